import { type ClientHello, MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello';
import { CONTENT_TYPE_HANDSHAKE } from './client-hello-records';

export { MAX_CLIENT_HELLO_BYTES };

export type FirstBytesKind = 'tls' | 'http' | 'unknown';

// HTTP/1.x request line (RFC 9112 section 3): method token then SP. Registered methods are at
// most 17 characters ("UPDATEREDIRECTREF"); 24 leaves room without reading far into a stream.
const MAX_METHOD_CHARS = 24;

function isUppercaseLetter(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

function isMethodByte(byte: number): boolean {
  return isUppercaseLetter(byte) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x5f;
}

/** 0x16 0x03 0x0X: a handshake record with an SSL 3.0 / TLS 1.x record version. */
function classifyTlsRecord(input: Buffer): FirstBytesKind | 'needMore' {
  if (input.length < 2) return 'needMore';
  if (input.readUInt8(1) !== 3) return 'unknown';
  if (input.length < 3) return 'needMore';
  return input.readUInt8(2) <= 0x0f ? 'tls' : 'unknown';
}

/**
 * Empty lines a server ignores before a request line (RFC 9112 section 2.2: "SHOULD ignore at
 * least one"; Node's parser and nginx ignore several). Bounded, so a stream of line ends is not
 * waited on for ever.
 */
const MAX_LEADING_LINE_END_BYTES = 16;

function isLineEnd(byte: number): boolean {
  return byte === 0x0d || byte === 0x0a;
}

/**
 * An uppercase method token followed by a space, as in "GET " or "CONNECT ", after any empty
 * lines: whatever an origin would read as a request line must be read as one here too, or a
 * request could pass as "not HTTP" and skip the HTTP rules.
 */
function classifyRequestLine(input: Buffer): FirstBytesKind | 'needMore' {
  let start = 0;
  while (start < input.length && isLineEnd(input.readUInt8(start))) {
    start++;
    if (start > MAX_LEADING_LINE_END_BYTES) return 'unknown';
  }
  const scan = Math.min(input.length, start + MAX_METHOD_CHARS + 1);
  for (let i = start; i < scan; i++) {
    const byte = input.readUInt8(i);
    if (byte === 0x20) return i > start ? 'http' : 'unknown';
    if (i === start ? !isUppercaseLetter(byte) : !isMethodByte(byte)) return 'unknown';
  }
  return input.length - start > MAX_METHOD_CHARS ? 'unknown' : 'needMore';
}

/**
 * Classifies the first bytes of a stream: a TLS handshake record, what starts like an HTTP/1.x
 * request line, or neither. 'needMore' only while the bytes present are a prefix of both
 * possible answers (at most 3 bytes for TLS, a method token plus space for HTTP).
 */
export function classifyFirstBytes(input: Buffer): FirstBytesKind | 'needMore' {
  if (input.length === 0) return 'needMore';
  if (input.readUInt8(0) === CONTENT_TYPE_HANDSHAKE) return classifyTlsRecord(input);
  return classifyRequestLine(input);
}

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
