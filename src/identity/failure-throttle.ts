import { LRUCache } from 'lru-cache';

interface Window {
  readonly startedAt: number;
  /** Failures that happened: they count until the window ends. */
  failures: number;
  /** Checks running now that will count as failures unless they succeed. */
  reserved: number;
  /** Whether the lock-out of this window was already reported. */
  reported: boolean;
}

/**
 * A failure slot held while one password check runs. The check either fails (`confirm`: the
 * slot becomes a failure) or succeeds or never runs (`release`: the slot is given back).
 * Exactly one of the two is called, once.
 */
export interface FailureSlot {
  /** Failures in the window now, and whether this failure is the one that locked the address. */
  confirm(): { readonly failures: number; readonly locked: boolean };
  release(): void;
}

/**
 * Failed authentications per client address in a fixed window. Once an address reaches
 * `maxFailures`, it is refused without its credentials being checked until the window ends:
 * guessing gets no answer, and scrypt's cost is not spent on an attacker's behalf.
 * A check takes its slot before it runs (`reserve`), so a burst of concurrent guesses gets no
 * more than `maxFailures` checks: counting failures only when they complete let every guess of
 * a burst through before the first one had failed.
 * Bounded: the least recently failing addresses are forgotten first.
 */
export class FailureThrottle {
  private readonly windows: LRUCache<string, Window>;

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
    maxAddresses = 100_000,
  ) {
    this.windows = new LRUCache({ max: maxAddresses });
  }

  private current(address: string): Window | null {
    const window = this.windows.get(address);
    if (!window) return null;
    if (this.now() - window.startedAt >= this.windowMs) {
      this.windows.delete(address);
      return null;
    }
    return window;
  }

  private open(address: string): Window {
    const existing = this.current(address);
    if (existing) return existing;
    const window: Window = { startedAt: this.now(), failures: 0, reserved: 0, reported: false };
    this.windows.set(address, window);
    return window;
  }

  /**
   * Milliseconds until this address may try again; 0 when it may try now. Checks still running
   * count: while they hold every slot, nothing else is checked.
   */
  retryAfterMs(address: string): number {
    const window = this.current(address);
    if (!window || window.failures + window.reserved < this.maxFailures) return 0;
    return Math.max(1, window.startedAt + this.windowMs - this.now());
  }

  /** Takes a slot for one check, or null when the address has none left in this window. */
  reserve(address: string): FailureSlot | null {
    const window = this.open(address);
    if (window.failures + window.reserved >= this.maxFailures) return null;
    window.reserved++;
    let settled = false;
    const settle = (): void => {
      if (settled) throw new Error('a failure slot is settled once');
      settled = true;
      // A window that ended meanwhile is no longer in the map; settling it changes nothing.
      window.reserved--;
    };
    return {
      confirm: () => {
        settle();
        window.failures++;
        return { failures: window.failures, locked: this.reportLock(window) };
      },
      release: settle,
    };
  }

  /**
   * Records a failure found without a check of its own (malformed credentials, or a check
   * shared with a concurrent attempt); says whether this failure is the one that locked the address.
   */
  recordFailure(address: string): { readonly failures: number; readonly locked: boolean } {
    const window = this.open(address);
    window.failures++;
    return { failures: window.failures, locked: this.reportLock(window) };
  }

  /** True once per window: when its failures (not checks still running) reach the limit. */
  private reportLock(window: Window): boolean {
    if (window.reported || window.failures < this.maxFailures) return false;
    window.reported = true;
    return true;
  }
}

/** What a failure-slot settlement reports: failures in the window, and whether this one locked the address. */
export interface FailureCount {
  readonly failures: number;
  readonly locked: boolean;
}

/** A failure slot held while one check runs, where the count may live in another process. */
export interface CounterSlot {
  confirm(): Promise<FailureCount>;
  /** Gives the slot back; never throws (a slot that cannot be given back expires with its window). */
  release(): void;
}

/**
 * The failed-authentication count per client address as the user store uses it: in this process
 * (`LocalFailureCounter`) or shared by every replica of a fleet (a Redis-backed counter, see
 * backplane/). A counter that cannot answer rejects; the user store then refuses to check
 * credentials at all (fail closed): an uncounted guess is a free guess.
 */
export interface FailureCounter {
  retryAfterMs(address: string): Promise<number>;
  reserve(address: string): Promise<CounterSlot | null>;
  recordFailure(address: string): Promise<FailureCount>;
}

/** The in-process counter: a FailureThrottle behind the asynchronous interface. */
export class LocalFailureCounter implements FailureCounter {
  constructor(private readonly throttle: FailureThrottle) {}

  retryAfterMs(address: string): Promise<number> {
    return Promise.resolve(this.throttle.retryAfterMs(address));
  }

  reserve(address: string): Promise<CounterSlot | null> {
    const slot = this.throttle.reserve(address);
    if (!slot) return Promise.resolve(null);
    return Promise.resolve({ confirm: () => Promise.resolve(slot.confirm()), release: () => slot.release() });
  }

  recordFailure(address: string): Promise<FailureCount> {
    return Promise.resolve(this.throttle.recordFailure(address));
  }
}
