/**
 * Runs at most `max` tasks at once and queues at most `maxWaiting` more. Password checks use
 * it: scrypt runs on libuv's thread pool (4 threads by default), which file I/O (the audit
 * sink) and key generation share, so a flood of logins must not occupy all of it.
 */
export class ConcurrencyLimit {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxWaiting: number,
  ) {}

  /** The task's result, or null at once when the queue is full (the caller answers "busy"). */
  async run<T>(task: () => Promise<T>): Promise<T | null> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.maxWaiting) return null;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so `running` never dips and overshoots.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
