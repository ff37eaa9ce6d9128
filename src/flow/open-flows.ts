import type { Socket } from 'node:net';
import type { Flow } from './flow';

/** What the end of a SIGTERM drain did to the flows still open (gateway.ts logs it). */
export interface ShutdownOutcome {
  /** Flows open when the grace period ended, cut with `close: shutdown`. */
  readonly cut: number;
  /** Of those, flows that had not closed on their own within the bound: their records were written for them. */
  readonly forced: number;
}

/**
 * The flows open now, each with its client socket. Flow registers itself on construction and
 * leaves on close (flow.ts), so every front-end's flows are here without each one having to
 * remember. At the end of a SIGTERM drain the gateway cuts what is left through `cutAll()` and
 * waits for `settled()`: a flow's connection record (and its in-flight request's record) is
 * written as its socket closes, several event-loop turns after the socket is destroyed, and
 * the audit sink must not close before that.
 */
export class OpenFlows {
  private readonly open = new Map<Flow, Socket>();
  /** Requests whose record is not written yet, each with the function that writes it. */
  private readonly requests = new Set<() => void>();
  private waiters: (() => void)[] = [];

  get size(): number {
    return this.open.size;
  }

  /** A request began (its tracker, http/request-record.ts); the function returned says it was recorded. */
  requestStarted(finish: () => void): () => void {
    this.requests.add(finish);
    return () => {
      this.requests.delete(finish);
      this.wake();
    };
  }

  add(flow: Flow, client: Socket): void {
    this.open.set(flow, client);
  }

  delete(flow: Flow): void {
    if (this.open.delete(flow)) this.wake();
  }

  private wake(): void {
    if (this.open.size > 0 || this.requests.size > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * The end of the grace period: every flow still open is marked as cut by the shutdown (its
   * record says `close: shutdown`) and its client socket destroyed. Returns how many.
   */
  cutAll(): number {
    const flows = [...this.open];
    for (const [flow] of flows) flow.cutByShutdown();
    for (const [, socket] of flows) socket.destroy();
    return flows.length;
  }

  /**
   * Resolves once every open flow has closed and every request begun has written its record, or
   * after `timeoutMs`: then what is still open (a socket whose close never came) is recorded
   * here, with what it knows, requests first, so that no record is lost to a stuck socket.
   * Returns how many flows had to be closed that way.
   */
  async settled(timeoutMs: number): Promise<number> {
    if (this.open.size > 0 || this.requests.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const finish of [...this.requests]) finish();
    const stuck = [...this.open];
    for (const [flow, socket] of stuck) flow.closeAtShutdown(socket.bytesRead, socket.bytesWritten);
    return stuck.length;
  }
}
