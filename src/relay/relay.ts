import type { Socket } from 'node:net';
import type { OriginReads } from './origin-reads';
/** How a relay ended: which side closed or reset first, or the idle timeout, or an error. */
export type RelayEnd = 'client-closed' | 'upstream-closed' | 'client-reset' | 'upstream-reset' | 'timeout' | 'error';

export interface RelayResult {
  readonly close: RelayEnd;
  /** Bytes the origin received (including replayed peeked bytes) and sent. */
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

function resetOrDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  // Mirror a reset to the other side as a reset (RST), not a clean FIN: a client must not
  // mistake a truncated transfer for a complete one.
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening') {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // Only TCP handles can send an RST; a TLS socket (a relayed WebSocket inside an
      // inspected tunnel) throws ERR_INVALID_HANDLE_TYPE and is closed plainly instead.
    }
  }
  socket.destroy();
}

/**
 * Relays bytes both ways between a client and an origin, untouched: backpressure (by `pipe`,
 * or for an origin socket reading into reused buffers by origin-reads.ts),
 * half-close preserved (one side's FIN becomes the other side's FIN while the opposite
 * direction keeps flowing), a reset on one side becomes a reset on the other, and an idle
 * timer covers both directions. The origin → client direction may start before the client's
 * first bytes are classified (server-speaks-first protocols); `startUpstream` then replays
 * the peeked bytes and joins the client → origin direction.
 */
export class Relay {
  private firstEnd: 'client' | 'upstream' | null = null;
  private closeKind: RelayEnd | null = null;
  private closedCount = 0;
  private downstreamStarted = false;
  private readonly done: Promise<RelayResult>;
  private resolveDone!: (result: RelayResult) => void;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    idleTimeoutMs: number,
    /** Set when the origin socket reads into reused buffers (origin-reads.ts); else `pipe()`. */
    private readonly reads: OriginReads | null = null,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('error', (err: NodeJS.ErrnoException) => this.fail('client', err));
    upstream.on('error', (err: NodeJS.ErrnoException) => this.fail('upstream', err));
    client.once('end', () => (this.firstEnd ??= 'client'));
    upstream.once('end', () => (this.firstEnd ??= 'upstream'));
    client.once('close', () => this.onClose());
    upstream.once('close', () => this.onClose());
    const onIdle = (): void => {
      this.closeKind ??= 'timeout';
      client.destroy();
      upstream.destroy();
    };
    client.setTimeout(idleTimeoutMs, onIdle);
    upstream.setTimeout(idleTimeoutMs, onIdle);
  }

  /** Origin -> client. */
  startDownstream(): void {
    if (this.downstreamStarted) return;
    this.downstreamStarted = true;
    if (this.reads) this.reads.attach(this.upstream, this.client);
    else this.upstream.pipe(this.client);
  }

  /** Client -> origin, after writing the bytes peeked from the client. */
  startUpstream(replay: Buffer, clientEnded = false): void {
    this.startDownstream();
    if (clientEnded) {
      this.upstream.end(replay);
      return;
    }
    if (replay.length > 0) this.upstream.write(replay);
    this.client.pipe(this.upstream);
    this.client.resume();
  }

  /** Tear both sides down, e.g. when a late decision denies the flow. */
  abort(kind: RelayEnd): void {
    this.closeKind ??= kind;
    this.client.destroy();
    this.upstream.destroy();
  }

  /** Stop relaying the origin side without touching the client (the flow goes elsewhere). */
  detachUpstream(): void {
    if (this.reads) this.reads.detach();
    else this.upstream.unpipe(this.client);
    this.upstream.removeAllListeners();
    this.upstream.on('error', () => undefined);
    this.upstream.destroy();
  }

  get hasSentDownstream(): boolean {
    return this.upstream.bytesRead > 0;
  }

  result(): Promise<RelayResult> {
    return this.done;
  }

  private fail(side: 'client' | 'upstream', err: NodeJS.ErrnoException): void {
    const reset = RESET_CODES.has(err.code ?? '');
    this.closeKind ??= reset ? (side === 'client' ? 'client-reset' : 'upstream-reset') : 'error';
    resetOrDestroy(side === 'client' ? this.upstream : this.client);
  }

  private onClose(): void {
    this.closedCount++;
    if (this.closedCount === 1) {
      // One side is gone for good; without a half-close from it, the other side must go too.
      if (this.client.destroyed && !this.upstream.destroyed && this.firstEnd !== 'client') this.upstream.destroy();
      if (this.upstream.destroyed && !this.client.destroyed && this.firstEnd !== 'upstream') this.client.destroy();
      return;
    }
    const close: RelayEnd = this.closeKind ?? (this.firstEnd === 'upstream' ? 'upstream-closed' : 'client-closed');
    this.resolveDone({ close, bytesUp: this.upstream.bytesWritten, bytesDown: this.upstream.bytesRead });
  }
}
