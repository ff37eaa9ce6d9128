import { LRUCache } from 'lru-cache';

interface Window {
  startedAt: number;
  failures: number;
}

/**
 * Failed authentications per client address in a fixed window. Once an address reaches
 * `maxFailures`, it is refused without its credentials being checked until the window ends:
 * guessing gets no answer, and scrypt's cost is not spent on an attacker's behalf.
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

  /** Milliseconds until this address may try again; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const window = this.current(address);
    if (!window || window.failures < this.maxFailures) return 0;
    return Math.max(1, window.startedAt + this.windowMs - this.now());
  }

  /** Records a failure; returns the failures counted in the current window. */
  recordFailure(address: string): number {
    const window = this.current(address);
    if (window) {
      window.failures++;
      return window.failures;
    }
    this.windows.set(address, { startedAt: this.now(), failures: 1 });
    return 1;
  }
}
