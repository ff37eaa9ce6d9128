import type { Socket } from 'node:net';
import type { SocksInvalid, SocksParseResult } from '../protocol/socks-wire';

export type HandshakeRead<T> = { readonly kind: 'parsed'; readonly value: T } | SocksInvalid | { readonly kind: 'closed' };

/**
 * Bytes buffered past this point make the reader pause the socket: no handshake message is
 * this long, so a client sending more is sending payload early, which waits in the kernel
 * (backpressure) instead of in our memory.
 */
const PAUSE_AT_BYTES = 16 * 1024;

/**
 * Feeds a client's bytes to sans-io parsers one message at a time, for front-ends that
 * negotiate before the tunnel opens (SOCKS). Whatever the client sent after the last message
 * stays buffered and is handed on by `detach()`, so pipelined payload is never lost.
 */
export class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private detached = false;
  private wake: (() => void) | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.buffered.length >= PAUSE_AT_BYTES) this.socket.pause();
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
    socket.once('close', this.onEnd);
  }

  /** The next message, an invalid result (bytes that can never parse), or the client's close. */
  async read<T>(parse: (input: Buffer) => SocksParseResult<T>): Promise<HandshakeRead<T>> {
    for (;;) {
      if (this.detached) return { kind: 'closed' };
      const result = parse(this.buffered);
      if (result.kind === 'parsed') {
        this.buffered = this.buffered.subarray(result.consumed);
        return { kind: 'parsed', value: result.value };
      }
      if (result.kind === 'invalid') return result;
      if (this.ended || this.socket.destroyed) return { kind: 'closed' };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Bytes received so far that no parser consumed (for "truncated" log lines). */
  get pendingBytes(): number {
    return this.buffered.length;
  }

  /** Stops reading; returns the unconsumed bytes. The socket is left paused, no data listener. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    this.detached = true;
    // A read still waiting (the handshake timed out) ends as "closed" instead of hanging.
    this.notify();
    return rest;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
