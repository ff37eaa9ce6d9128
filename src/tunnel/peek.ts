import type { Socket } from 'node:net';
import { MAX_CLIENT_HELLO_BYTES, type Peek, classifyPeek } from '../protocol/first-bytes';

export interface PeekOptions {
  readonly maxBytes?: number;
  /** null: no timer of its own (the caller's idle timeout applies). */
  readonly timeoutMs: number | null;
  /**
   * Aborted when the origin spoke first: a client that has sent nothing yet gets an empty
   * `timeout` peek at once (the caller tells it apart by the signal); one that is part-way
   * through its first bytes is still read.
   */
  readonly originSpoke?: AbortSignal;
}

/**
 * Reads just enough of the client's first bytes to tell a TLS ClientHello (with its SNI and
 * ALPN) from anything else, bounded in bytes and time. The socket is left paused with no data
 * listener, and every byte read is returned so the caller can replay it (splice) or unshift
 * it (inspect).
 */
export function peekClientBytes(socket: Socket, initial: Buffer, options: PeekOptions): Promise<Peek> {
  const maxBytes = options.maxBytes ?? MAX_CLIENT_HELLO_BYTES;
  let buffered = initial;
  if (buffered.length > 0) {
    const early = classifyPeek(buffered, maxBytes);
    if (early) return Promise.resolve(early);
  }
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    const finish = (peek: Peek): void => {
      if (timer) clearTimeout(timer);
      // Pause and detach in the same tick as the last 'data' event, so no chunk is emitted
      // to nobody before the next stage attaches its own reader.
      socket.pause();
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      options.originSpoke?.removeEventListener('abort', onOriginSpoke);
      resolve(peek);
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const peek = classifyPeek(buffered, maxBytes);
      if (peek) finish(peek);
    };
    const onEnd = (): void => finish({ kind: 'closed', bytes: buffered });
    const onOriginSpoke = (): void => {
      if (buffered.length === 0) finish({ kind: 'timeout', bytes: buffered });
    };
    if (options.originSpoke?.aborted) {
      finish({ kind: 'timeout', bytes: buffered });
      return;
    }
    options.originSpoke?.addEventListener('abort', onOriginSpoke);
    if (options.timeoutMs !== null) timer = setTimeout(() => finish({ kind: 'timeout', bytes: buffered }), options.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
