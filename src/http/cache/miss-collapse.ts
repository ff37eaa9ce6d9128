/**
 * Collapsed misses: while one request (the leader) fetches a cacheable URL, later misses for the
 * same key wait for its response instead of each going to the origin, then look the store up
 * again. Waiting is bounded twice: at most `maxWaiters` per key (the rest go to the origin at
 * once) and at most `maxWaitMs` each (then the waiter goes to the origin itself), so a slow or
 * stuck leader costs the others a bounded delay, never the answer. The leader settles its key
 * as soon as it knows whether anything will be stored (unstorable: at the response head).
 *
 * A URL whose last response could not be stored (no-store, private, Set-Cookie, too large) is
 * remembered for a while and not collapsed: otherwise every burst of requests to an API that is
 * never cacheable would queue behind one request and then go to the origin anyway, in turn
 * (Varnish calls the remembered fact "hit-for-miss"). A stored response forgets it at once.
 */

export interface CollapseOptions {
  /** Waiters per key; 0 turns collapsing off (`cache.collapse_max_waiters`). */
  readonly maxWaiters: number;
  /** Longest a waiter waits for the leader (`cache.collapse_max_wait`). */
  readonly maxWaitMs: number;
  /** The clock, for tests. */
  readonly now?: () => number;
}

/** How long a URL whose response could not be stored stays out of collapsing (Varnish's default hit-for-miss lifetime). */
const UNCACHEABLE_MS = 120_000;
/** URLs remembered as not storable, at most; the oldest is forgotten first. */
const MAX_UNCACHEABLE = 10_000;

/** Why a waiter stopped waiting: the leader settled its key, or the wait ran out. */
export type WaitOutcome = 'settled' | 'timeout';

export type CollapseRole =
  /** First miss for the key: fetch, then call `settle()` exactly when the outcome is known. */
  | { readonly kind: 'lead'; readonly settle: () => void }
  /** Another request is fetching: wait for it, then look the store up again. */
  | { readonly kind: 'wait'; readonly done: Promise<WaitOutcome> }
  /** Too many waiters already (or collapsing off): go to the origin now. */
  | { readonly kind: 'alone' };

interface Pending {
  waiters: number;
  readonly listeners: (() => void)[];
}

export class MissCollapser {
  private readonly pending = new Map<string, Pending>();
  /** Key -> until when its requests are not collapsed (its last response was not storable). */
  private readonly uncacheable = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: CollapseOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The response for `key` could not be stored: its next misses go to the origin side by side. */
  notStored(key: string): void {
    this.uncacheable.delete(key);
    this.uncacheable.set(key, this.now() + UNCACHEABLE_MS);
    if (this.uncacheable.size > MAX_UNCACHEABLE) this.uncacheable.delete(this.uncacheable.keys().next().value!);
  }

  /** A response for `key` was stored: collapse its misses again. */
  stored(key: string): void {
    this.uncacheable.delete(key);
  }

  join(key: string): CollapseRole {
    if (this.options.maxWaiters <= 0) return { kind: 'alone' };
    const until = this.uncacheable.get(key);
    if (until !== undefined) {
      if (until > this.now()) return { kind: 'alone' };
      this.uncacheable.delete(key);
    }
    const existing = this.pending.get(key);
    if (!existing) {
      const pending: Pending = { waiters: 0, listeners: [] };
      this.pending.set(key, pending);
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        if (this.pending.get(key) === pending) this.pending.delete(key);
        for (const listener of pending.listeners.splice(0)) listener();
      };
      return { kind: 'lead', settle };
    }
    if (existing.waiters >= this.options.maxWaiters) return { kind: 'alone' };
    existing.waiters++;
    const done = new Promise<WaitOutcome>((resolve) => {
      const timer = setTimeout(() => {
        existing.waiters--;
        resolve('timeout');
      }, this.options.maxWaitMs);
      existing.listeners.push(() => {
        clearTimeout(timer);
        resolve('settled');
      });
    });
    return { kind: 'wait', done };
  }

  /** Keys with a leader in flight (for tests and the status page). */
  get inFlight(): number {
    return this.pending.size;
  }
}
