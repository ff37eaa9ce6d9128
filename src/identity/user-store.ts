import { createHmac, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../sources/config-error';
import type { Logger } from '../logging/logger';
import { ConcurrencyLimit } from './concurrency-limit';
import { type CounterSlot, type FailureCount, type FailureCounter, FailureThrottle, LocalFailureCounter } from './failure-throttle';
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
  /**
   * Where failures are counted: shared by a fleet (state.redis), or by default in this process
   * with maxFailures and failureWindowMs.
   */
  readonly counter?: FailureCounter;
}

/**
 * `busy`: too many password checks are waiting; `unavailable`: the shared failure count cannot
 * be reached. In both cases the credentials were not checked.
 */
export type AuthFailure = 'unknown-user' | 'wrong-password' | 'malformed' | 'throttled' | 'busy' | 'unavailable';

export type AuthOutcome = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly reason: AuthFailure; readonly retryAfterMs: number };

export interface UsersReloadStatus {
  readonly ok: boolean;
  readonly version: string;
  readonly problems: readonly string[];
}

/** How one password check ended, shared by every attempt that joined it. */
type CheckResult = 'match' | 'mismatch' | 'busy' | 'throttled' | 'unavailable';

/** A check and the failure slot its first attempt holds (joiners hold none). */
interface OwnedCheck {
  readonly slot: CounterSlot | null;
  readonly result: CheckResult;
}

interface CachedSuccess {
  /** The hash the password was checked against: a changed password invalidates the entry. */
  readonly encoded: string;
  readonly principal: Principal;
}

const DEFAULT_CACHE_TTL_MS = 60_000;
/** What a client is told to wait while the shared failure count cannot be reached. */
const UNAVAILABLE_RETRY_MS = 5_000;
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
  private readonly counter: FailureCounter;
  /**
   * Keyed by an HMAC of name and password under a key that lives only in this process: the
   * plain password is never a key, and a memory dump does not yield an unsalted fast hash.
   */
  private readonly cache: LRUCache<string, CachedSuccess>;
  private readonly cacheKey = randomBytes(32);
  private readonly cacheTtlMs: number;
  private readonly inFlight = new Map<string, Promise<CheckResult>>();
  private readonly limit = new ConcurrencyLimit(MAX_CONCURRENT_CHECKS, MAX_WAITING_CHECKS);
  /** Checked for unknown users so that a wrong name costs as long as a wrong password. */
  private readonly decoy: ParsedHash = { params: DEFAULT_SCRYPT, salt: randomBytes(16), hash: randomBytes(32) };

  private constructor(
    private readonly options: UserStoreOptions,
    private readonly logger: Logger,
  ) {
    this.table = loadUsersFile(options.file);
    this.warnIfExposed();
    this.counter = options.counter ?? new LocalFailureCounter(new FailureThrottle(options.maxFailures, options.failureWindowMs, options.now));
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

  /**
   * Hashes are slow to crack, not impossible: the file should be its owner's alone. Read access
   * for a group this process belongs to is no wider than the process itself: that is how a
   * Kubernetes Secret volume arrives with an fsGroup (the kubelet adds group read for the pod's
   * own group whatever defaultMode says), and nobody could chmod it anyway.
   */
  private warnIfExposed(): void {
    try {
      const st = statSync(this.options.file);
      const mode = st.mode & 0o777;
      const ownGroup = process.getgroups?.().includes(st.gid) || process.getgid?.() === st.gid;
      if ((mode & 0o007) !== 0 || ((mode & 0o070) !== 0 && !ownGroup)) {
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

  /**
   * Milliseconds until this client address may authenticate again (0: now), or null when the
   * failure count cannot be read: then nothing is checked (fail closed), because a guess that is
   * not counted is a free guess.
   */
  async throttledFor(clientAddress: string): Promise<number | null> {
    try {
      return await this.counter.retryAfterMs(clientAddress);
    } catch (err) {
      this.logger.debug({ client: clientAddress, err }, 'failure count unavailable');
      return null;
    }
  }

  async verify(username: string, password: string, clientAddress: string, frontend = 'unknown'): Promise<Principal | null> {
    const outcome = await this.authenticate(username, password, clientAddress, frontend);
    return outcome.ok ? outcome.principal : null;
  }

  async authenticate(username: string, password: string, clientAddress: string, frontend: string): Promise<AuthOutcome> {
    const wait = await this.throttledFor(clientAddress);
    if (wait === null) return this.unavailable(clientAddress, frontend);
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
    // before the first failure was. The check is registered before the slot is asked for, so
    // a burst joins it even while a shared counter is still answering.
    let joined = this.inFlight.get(key);
    let owned: Promise<OwnedCheck> | null = null;
    if (!joined) {
      owned = this.reserveThenCheck(clientAddress, password, entry?.hash ?? this.decoy);
      const shared = owned.then((o) => o.result);
      joined = shared;
      this.inFlight.set(key, shared);
      void shared.finally(() => {
        if (this.inFlight.get(key) === shared) this.inFlight.delete(key);
      });
    }
    const { slot, result } = owned ? await owned : { slot: null, result: await joined };
    switch (result) {
      case 'unavailable':
        return this.unavailable(clientAddress, frontend);
      case 'throttled':
        return { ok: false, reason: 'throttled', retryAfterMs: Math.max(1, (await this.throttledFor(clientAddress)) ?? UNAVAILABLE_RETRY_MS) };
      case 'busy':
        slot?.release();
        this.logger.warn({ client: clientAddress, frontend }, 'too many password checks waiting; authentication refused without checking');
        return { ok: false, reason: 'busy', retryAfterMs: 1000 };
    }
    // The table may have been reloaded while scrypt ran; decide against the entry we checked.
    if (entry && result === 'match') {
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
  fail(clientAddress: string, frontend: string, reason: Exclude<AuthFailure, 'throttled' | 'busy' | 'unavailable'>, knownUser: string | null = null): Promise<AuthOutcome> {
    return this.recordFailed(clientAddress, frontend, reason, knownUser, null);
  }

  private unavailable(clientAddress: string, frontend: string): AuthOutcome {
    this.logger.info({ client: clientAddress, frontend }, 'proxy authentication refused without checking: the shared failure count (state.redis) is unreachable');
    return { ok: false, reason: 'unavailable', retryAfterMs: UNAVAILABLE_RETRY_MS };
  }

  /** `slot`: the one this attempt's own check held, which now becomes its failure. */
  private async recordFailed(
    clientAddress: string,
    frontend: string,
    reason: Exclude<AuthFailure, 'throttled' | 'busy' | 'unavailable'>,
    knownUser: string | null,
    slot: CounterSlot | null,
  ): Promise<AuthOutcome> {
    let counted: FailureCount | null = null;
    try {
      counted = slot ? await slot.confirm() : await this.counter.recordFailure(clientAddress);
    } catch (err) {
      // The attempt failed all the same; the store's own log says why counting did not work.
      this.logger.debug({ client: clientAddress, err }, 'failure count unavailable');
    }
    this.logger.info({ client: clientAddress, frontend, user: knownUser, reason, failures: counted?.failures ?? null }, 'proxy authentication failed');
    const retryAfterMs = (await this.throttledFor(clientAddress)) ?? 0;
    if (counted?.locked) {
      this.logger.warn(
        { client: clientAddress, frontend, failures: counted.failures, retry_after_ms: retryAfterMs },
        'too many failed authentications: this client address is refused until the window ends',
      );
    }
    return { ok: false, reason, retryAfterMs };
  }

  /** Takes a failure slot, then runs scrypt in the bounded pool; the slot is the caller's to settle. */
  private async reserveThenCheck(clientAddress: string, password: string, hash: ParsedHash): Promise<OwnedCheck> {
    let slot: CounterSlot | null;
    try {
      slot = await this.counter.reserve(clientAddress);
    } catch (err) {
      this.logger.debug({ client: clientAddress, err }, 'failure count unavailable');
      return { slot: null, result: 'unavailable' };
    }
    if (!slot) return { slot: null, result: 'throttled' };
    const matches = await this.limit
      .run(() => verifyPassword(password, hash))
      .catch((err: unknown) => {
        this.logger.error({ err }, 'password verification failed');
        return false;
      });
    if (matches === null) return { slot, result: 'busy' };
    return { slot, result: matches ? 'match' : 'mismatch' };
  }
}
