import { createHmac, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../sources/config-error';
import type { Logger } from '../logging/logger';
import { ConcurrencyLimit } from './concurrency-limit';
import { type FailureSlot, FailureThrottle } from './failure-throttle';
import { DEFAULT_SCRYPT, type ParsedHash, verifyPassword } from './password-hash';
import type { Authenticator, Principal } from './principal';
import { type UsersTable, loadUsersFile } from './users-file';

export interface UserStoreOptions {
  readonly file: string;
  readonly maxFailures: number;
  readonly failureWindowMs: number;
  /** How long a successful verification is remembered (scrypt is deliberately slow). */
  readonly cacheTtlMs?: number;
  readonly now?: () => number;
}

/** `busy`: too many password checks are waiting; the credentials were not checked. */
export type AuthFailure = 'unknown-user' | 'wrong-password' | 'malformed' | 'throttled' | 'busy';

export type AuthOutcome = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly reason: AuthFailure; readonly retryAfterMs: number };

export interface UsersReloadStatus {
  readonly ok: boolean;
  readonly version: string;
  readonly problems: readonly string[];
}

interface CachedSuccess {
  /** The hash the password was checked against: a changed password invalidates the entry. */
  readonly encoded: string;
  readonly principal: Principal;
}

const DEFAULT_CACHE_TTL_MS = 60_000;
/** Two scrypt runs at once leave the rest of libuv's four-thread pool to file I/O. */
const MAX_CONCURRENT_CHECKS = 2;
const MAX_WAITING_CHECKS = 256;

/**
 * The users file in force, and the one place credentials are checked: for proxy authentication
 * and for SOCKS5 username/password alike, with one failure throttle per client address.
 * A reload that finds the file invalid keeps the users in force, like a policy reload.
 */
export class UserStore implements Authenticator {
  readonly required = true;
  private table: UsersTable;
  private readonly throttle: FailureThrottle;
  /**
   * Keyed by an HMAC of name and password under a key that lives only in this process: the
   * plain password is never a key, and a memory dump does not yield an unsalted fast hash.
   */
  private readonly cache: LRUCache<string, CachedSuccess>;
  private readonly cacheKey = randomBytes(32);
  private readonly cacheTtlMs: number;
  private readonly inFlight = new Map<string, Promise<boolean | null>>();
  private readonly limit = new ConcurrencyLimit(MAX_CONCURRENT_CHECKS, MAX_WAITING_CHECKS);
  /** Checked for unknown users so that a wrong name costs as long as a wrong password. */
  private readonly decoy: ParsedHash = { params: DEFAULT_SCRYPT, salt: randomBytes(16), hash: randomBytes(32) };

  private constructor(
    private readonly options: UserStoreOptions,
    private readonly logger: Logger,
  ) {
    this.table = loadUsersFile(options.file);
    this.warnIfExposed();
    this.throttle = new FailureThrottle(options.maxFailures, options.failureWindowMs, options.now);
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
    this.cache = new LRUCache({ max: 10_000, ttl: Math.max(1, this.cacheTtlMs), ...(options.now ? { perf: { now: options.now } } : {}) });
  }

  /** Loads the users file; throws ConfigError naming file and line when it is invalid. */
  static load(options: UserStoreOptions, logger: Logger): UserStore {
    return new UserStore(options, logger);
  }

  get file(): string {
    return this.options.file;
  }

  get version(): string {
    return this.table.version;
  }

  get userCount(): number {
    return this.table.users.size;
  }

  isKnownUser(name: string): boolean {
    return this.table.users.has(name);
  }

  /** The principal a user name stands for (no password check): for `tollgate explain`. */
  principalOf(name: string): Principal | null {
    const entry = this.table.users.get(name);
    return entry ? { user: entry.name, groups: entry.groups } : null;
  }

  /** Hashes are slow to crack, not impossible: the file should be its owner's alone. */
  private warnIfExposed(): void {
    try {
      const mode = statSync(this.options.file).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        this.logger.warn({ users_file: this.options.file, mode: mode.toString(8) }, 'the users file is readable by group or others; chmod 600 it');
      }
    } catch {
      // It was just read; a race with a rename is harmless here.
    }
  }

  reload(trigger: string): UsersReloadStatus {
    const previous = this.table.version;
    try {
      this.table = loadUsersFile(this.options.file);
      this.cache.clear();
      this.warnIfExposed();
      if (this.table.version !== previous) this.logger.info({ trigger, users_version: this.table.version, users: this.table.users.size }, 'users file reloaded');
      return { ok: true, version: this.table.version, problems: [] };
    } catch (err) {
      const problems = err instanceof ConfigError ? err.message.split('\n') : [(err as Error).message];
      this.logger.error({ trigger, users_version: previous, problems }, 'users file reload failed; the previous users stay in force');
      return { ok: false, version: previous, problems };
    }
  }

  /** Milliseconds until this client address may authenticate again; 0 when it may now. */
  throttledFor(clientAddress: string): number {
    return this.throttle.retryAfterMs(clientAddress);
  }

  async verify(username: string, password: string, clientAddress: string, frontend = 'unknown'): Promise<Principal | null> {
    const outcome = await this.authenticate(username, password, clientAddress, frontend);
    return outcome.ok ? outcome.principal : null;
  }

  async authenticate(username: string, password: string, clientAddress: string, frontend: string): Promise<AuthOutcome> {
    const wait = this.throttledFor(clientAddress);
    if (wait > 0) {
      return { ok: false, reason: 'throttled', retryAfterMs: wait };
    }
    const entry = this.table.users.get(username);
    const key = createHmac('sha256', this.cacheKey).update(username).update('\0').update(password).digest('base64');
    const cached = this.cache.get(key);
    if (entry && cached && cached.encoded === entry.encoded) return { ok: true, principal: cached.principal };

    // Joining a check already running for the same credentials costs nothing (a browser sends
    // one burst of identical credentials). A new check takes its failure slot before scrypt
    // starts: counted only afterwards, every guess of a concurrent burst would be checked
    // before the first failure was.
    let running = this.inFlight.get(key);
    let slot: FailureSlot | null = null;
    if (!running) {
      slot = this.throttle.reserve(clientAddress);
      if (!slot) return { ok: false, reason: 'throttled', retryAfterMs: this.throttledFor(clientAddress) };
      running = this.check(key, password, entry?.hash ?? this.decoy);
    }
    const matches = await running;
    if (matches === null) {
      slot?.release();
      this.logger.warn({ client: clientAddress, frontend }, 'too many password checks waiting; authentication refused without checking');
      return { ok: false, reason: 'busy', retryAfterMs: 1000 };
    }
    // The table may have been reloaded while scrypt ran; decide against the entry we checked.
    if (entry && matches) {
      slot?.release();
      const principal: Principal = Object.freeze({ user: entry.name, groups: entry.groups });
      if (this.cacheTtlMs > 0) this.cache.set(key, { encoded: entry.encoded, principal });
      return { ok: true, principal };
    }
    return this.recordFailed(clientAddress, frontend, entry ? 'wrong-password' : 'unknown-user', entry ? username : null, slot);
  }

  /**
   * Counts a failed attempt for a client address (also for malformed credentials, which the
   * front-end detects). The attempted name is logged only when it is a real user: people type
   * passwords into the name field.
   */
  fail(clientAddress: string, frontend: string, reason: Exclude<AuthFailure, 'throttled' | 'busy'>, knownUser: string | null = null): AuthOutcome {
    return this.recordFailed(clientAddress, frontend, reason, knownUser, null);
  }

  /** `slot`: the one this attempt's own check held, which now becomes its failure. */
  private recordFailed(clientAddress: string, frontend: string, reason: Exclude<AuthFailure, 'throttled' | 'busy'>, knownUser: string | null, slot: FailureSlot | null): AuthOutcome {
    const { failures, locked } = slot ? slot.confirm() : this.throttle.recordFailure(clientAddress);
    this.logger.info({ client: clientAddress, frontend, user: knownUser, reason, failures }, 'proxy authentication failed');
    const retryAfterMs = this.throttle.retryAfterMs(clientAddress);
    if (locked) {
      this.logger.warn({ client: clientAddress, frontend, failures, retry_after_ms: retryAfterMs }, 'too many failed authentications: this client address is refused until the window ends');
    }
    return { ok: false, reason, retryAfterMs };
  }

  /** Concurrent checks of the same credentials share one scrypt run; null when too busy. */
  private check(key: string, password: string, hash: ParsedHash): Promise<boolean | null> {
    const running = this.inFlight.get(key);
    if (running) return running;
    const started = this.limit
      .run(() => verifyPassword(password, hash))
      .catch((err: unknown) => {
        this.logger.error({ err }, 'password verification failed');
        return false;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }
}
