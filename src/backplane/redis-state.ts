import tls from 'node:tls';
import type { Redis } from 'ioredis';
import type { CounterSlot, FailureCount, FailureCounter } from '../identity/failure-throttle';
import type { Logger } from '../logging/logger';
import type { PinningLedger } from '../terminals/pinning-monitor';
import { readConfiguredFile } from './configured-file';
import { FAILURE_SCRIPTS, PINNING_SCRIPTS } from './redis-scripts';

export interface RedisStateOptions {
  /** redis://[user@]host:port[/db] or rediss://; never with a password (see passwordFile). */
  readonly url: string;
  readonly passwordFile: string | null;
  readonly caFile: string | null;
  readonly keyPrefix: string;
  /** Deadline of every command; past it the call fails and the caller fails closed. */
  readonly timeoutMs: number;
}

export interface StateStoreHealth {
  /** Where the store is, without credentials. */
  readonly location: string;
  readonly up: boolean;
  /** When it last went up or down. */
  readonly since: Date;
  /** The last error seen (a code or message, never a credential). */
  readonly lastError: string | null;
  /** Commands that failed (store down, timeout, error) since start. */
  readonly failedCommands: number;
}

type Script = (...args: (string | number)[]) => Promise<unknown>;

/** The URL as it may be logged: scheme, host, port and database, no user or password. */
export function redisLocation(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
}

/**
 * State that the replicas of a fleet share through one Redis (`state.redis`): failed
 * authentications per client address, and certificate-pinning observations. Every key carries
 * a TTL no longer than the window it belongs to, so the data set is bounded by the traffic of
 * one window, never by uptime. The client fails fast while Redis is unreachable (no offline
 * queue, one deadline per command): callers must never wait on a dead store, and each decides
 * what an unanswered call means (authentication: refuse, fail closed; pinning: report only).
 */
export class RedisStateStore {
  private up = false;
  private since = new Date();
  private lastError: string | null = null;
  private failedCommands = 0;
  private everConnected = false;
  readonly location: string;

  private constructor(
    private readonly redis: Redis,
    location: string,
    private readonly logger: Logger,
  ) {
    this.location = location;
    redis.on('ready', () => this.markUp());
    redis.on('error', (err: NodeJS.ErrnoException) => {
      // ioredis reports every failed reconnect; the transition is what gets logged.
      this.lastError = err.code ?? err.message;
    });
    redis.on('close', () => this.markDown());
    redis.on('end', () => this.markDown());
  }

  static connect(options: RedisStateOptions, logger: Logger): RedisStateStore {
    const url = new URL(options.url);
    const password = options.passwordFile ? readConfiguredFile(options.passwordFile, 'state.password_file').replace(/\r?\n$/, '') : undefined;
    const ca = options.caFile ? readConfiguredFile(options.caFile, 'state.ca_file') : undefined;
    // Loaded here, not at start-up: ioredis costs about 20 MB of RSS in a gateway that has no
    // state.redis, which is every single-host gateway.
    const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
    const redis = new RedisClient(options.url, {
      ...(password !== undefined ? { password } : {}),
      ...(url.protocol === 'rediss:' ? { tls: { servername: url.hostname, ...(ca ? { ca: [...tls.rootCertificates, ca] } : {}) } } : {}),
      keyPrefix: options.keyPrefix,
      // No offline queue and no retries per command: a call made while Redis is unreachable
      // fails at once instead of waiting for a reconnect that may never come.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs * 4),
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
      // RESP2: every Redis and Redis-compatible server speaks it.
      protocol: 2,
      maintNotifications: 'disabled',
      connectionName: 'tollgate',
    });
    for (const [name, definition] of Object.entries({ ...FAILURE_SCRIPTS, ...PINNING_SCRIPTS })) redis.defineCommand(name, definition);
    return new RedisStateStore(redis, redisLocation(options.url), logger);
  }

  /** Waits (bounded) for the first connection, so start-up does not report a store that is merely still connecting. */
  async waitReady(timeoutMs: number): Promise<boolean> {
    if (this.up) return true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.redis.once('ready', done);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
    if (!this.up)
      this.logger.warn(
        { redis: this.location, error: this.lastError },
        'state store unreachable at start: proxy authentication refuses to check credentials and pinning detection is report-only until it answers',
      );
    return this.up;
  }

  health(): StateStoreHealth {
    return { location: this.location, up: this.up, since: this.since, lastError: this.lastError, failedCommands: this.failedCommands };
  }

  async close(): Promise<void> {
    this.redis.removeAllListeners('close');
    this.redis.removeAllListeners('end');
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private markUp(): void {
    if (this.up) return;
    this.up = true;
    this.since = new Date();
    if (this.everConnected) this.logger.info({ redis: this.location }, 'state store reachable again: fleet-wide authentication throttling and pinning detection resume');
    else this.logger.info({ redis: this.location }, 'state store connected: authentication throttling and pinning detection are fleet-wide');
    this.everConnected = true;
  }

  private markDown(): void {
    if (!this.up) return;
    this.up = false;
    this.since = new Date();
    this.logger.warn(
      { redis: this.location, error: this.lastError },
      'state store unreachable: proxy authentication refuses to check credentials (fail closed) and pinning detection is report-only until it is back',
    );
  }

  private async run<T>(name: string, keys: readonly string[], args: readonly (string | number)[]): Promise<T> {
    const script = (this.redis as unknown as Record<string, Script>)[name]!;
    try {
      return (await script.call(this.redis, ...keys, ...args)) as T;
    } catch (err) {
      this.failedCommands++;
      this.lastError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw err;
    }
  }

  /** Failed authentications per client address, counted across the fleet (see identity/failure-throttle.ts). */
  failureCounter(maxFailures: number, windowMs: number): FailureCounter {
    const key = (address: string): string => `auth:${address}`;
    const newWindow = (): string => `${process.pid}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;
    const count = (reply: unknown): FailureCount => {
      const [failures, locked] = reply as [number, number];
      return { failures, locked: locked === 1 };
    };
    return {
      retryAfterMs: async (address) => Number(await this.run<number>('tgAuthRetryAfter', [key(address)], [maxFailures])),
      reserve: async (address): Promise<CounterSlot | null> => {
        const window = await this.run<string | null>('tgAuthReserve', [key(address)], [maxFailures, windowMs, newWindow()]);
        if (window === null) return null;
        let settled = false;
        const settle = (): void => {
          if (settled) throw new Error('a failure slot is settled once');
          settled = true;
        };
        return {
          confirm: async () => {
            settle();
            return count(await this.run('tgAuthConfirm', [key(address)], [window, maxFailures, windowMs, newWindow()]));
          },
          release: () => {
            settle();
            // A slot that cannot be given back stays counted until its window ends: the safe side.
            this.run('tgAuthRelease', [key(address)], [window]).catch(() => undefined);
          },
        };
      },
      recordFailure: async (address) => count(await this.run('tgAuthRecord', [key(address)], [maxFailures, windowMs, newWindow()])),
    };
  }

  /** Certificate-pinning observations shared by the fleet (see terminals/pinning-monitor.ts). */
  pinningLedger(options: { readonly windowMs: number; readonly spliceForMs: number; readonly maxClientsPerName: number; readonly maxSplicedNames: number }): PinningLedger {
    const SPLICED = 'pin:spliced';
    return {
      observe: async (name, client) => Number(await this.run('tgPinObserve', [`pin:c:${name}`], [client, options.windowMs, options.maxClientsPerName])),
      claimSplice: async (name) => {
        const [result, until] = (await this.run<[number, string]>('tgPinClaim', [SPLICED], [name, options.spliceForMs, options.maxSplicedNames])).map(Number) as [number, number];
        return result < 0 ? null : { claimed: result === 1, until };
      },
      splicedNames: async () => {
        const flat = await this.run<string[]>('tgPinSpliced', [SPLICED], []);
        const out = new Map<string, number>();
        for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
        return out;
      },
    };
  }
}
