import type { Socket } from 'node:net';
import { type ClientHello, MAX_CLIENT_HELLO_BYTES, classifyFirstBytes, parseClientHello } from '../protocol/client-hello';

/** What the first bytes of a tunnel turned out to be. `bytes` is everything read, for replay. */
export type Peek =
  | { readonly kind: 'tls'; readonly hello: ClientHello; readonly bytes: Buffer }
  | { readonly kind: 'opaque'; readonly firstBytes: 'http' | 'other'; readonly bytes: Buffer }
  | { readonly kind: 'invalid-tls'; readonly reason: string; readonly bytes: Buffer }
  | { readonly kind: 'closed'; readonly bytes: Buffer }
  | { readonly kind: 'timeout'; readonly bytes: Buffer };

export interface PeekOptions {
  readonly maxBytes?: number;
  /** null: no timer of its own (the caller's idle timeout applies). */
  readonly timeoutMs: number | null;
}

/** Classifies bytes already in hand; null means more are needed. */
export function classifyPeek(bytes: Buffer, maxBytes: number): Peek | null {
  const kind = classifyFirstBytes(bytes);
  if (kind === 'needMore') return null;
  if (kind !== 'tls') return { kind: 'opaque', firstBytes: kind === 'http' ? 'http' : 'other', bytes };
  const result = parseClientHello(bytes, maxBytes);
  if (result.kind === 'needMore') return null;
  if (result.kind === 'invalid') return { kind: 'invalid-tls', reason: result.reason, bytes };
  return { kind: 'tls', hello: result.value, bytes };
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
      resolve(peek);
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const peek = classifyPeek(buffered, maxBytes);
      if (peek) finish(peek);
    };
    const onEnd = (): void => finish({ kind: 'closed', bytes: buffered });
    if (options.timeoutMs !== null) timer = setTimeout(() => finish({ kind: 'timeout', bytes: buffered }), options.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
