import { type ClientHello, MAX_CLIENT_HELLO_BYTES, classifyFirstBytes, parseClientHello } from './client-hello';

export { MAX_CLIENT_HELLO_BYTES };

/** What the first bytes of a tunnel turned out to be. `bytes` is everything read, for replay. */
export type Peek =
  | { readonly kind: 'tls'; readonly hello: ClientHello; readonly bytes: Buffer }
  | { readonly kind: 'opaque'; readonly firstBytes: 'http' | 'other'; readonly bytes: Buffer }
  | { readonly kind: 'invalid-tls'; readonly reason: string; readonly bytes: Buffer }
  | { readonly kind: 'closed'; readonly bytes: Buffer }
  | { readonly kind: 'timeout'; readonly bytes: Buffer };

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

/** A peek that found a complete ClientHello. */
export type TlsPeek = Extract<Peek, { kind: 'tls' }>;
