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
 * Empty lines before a request line: servers skip them (RFC 9112 section 2.2: "SHOULD ignore at
 * least one"; Node's parser skips any number). More than this many bytes of them are taken for
 * HTTP without waiting further: the HTTP path's parser and header timeout deal with the rest.
 */
const MAX_LEADING_LINE_END_BYTES = 16;

/** How far into a first line whose method is not upper case the request-line shape is looked for. */
const MAX_FIRST_LINE_BYTES = 8 * 1024;

function isLineEnd(byte: number): boolean {
  return byte === 0x0d || byte === 0x0a;
}

/** A token character (RFC 9110 section 5.6.2), which is what a method is made of. */
function isTokenByte(byte: number): boolean {
  if (byte >= 0x30 && byte <= 0x39) return true;
  if ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)) return true;
  return "!#$%&'*+-.^_`|~".includes(String.fromCharCode(byte));
}

/** "method SP target SP HTTP/": the shape of a request line, whatever the method's case. */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP\/\d/;

/**
 * What an origin would read as a request line, after any empty lines, must be read as one here
 * too, or a request could pass as "not HTTP" and skip the HTTP rules: an upper-case method and
 * a space ("GET ", "CONNECT ") at once; a method in any other case (some servers take `get`)
 * once its line shows the request-line shape.
 */
function classifyRequestLine(input: Buffer): FirstBytesKind | 'needMore' {
  let start = 0;
  while (start < input.length && isLineEnd(input.readUInt8(start))) {
    start++;
    if (start > MAX_LEADING_LINE_END_BYTES) return 'http';
  }
  const scan = Math.min(input.length, start + MAX_METHOD_CHARS + 1);
  let upperCase = true;
  for (let i = start; i < scan; i++) {
    const byte = input.readUInt8(i);
    if (byte === 0x20) {
      if (i === start) return 'unknown';
      return upperCase ? 'http' : requestLineShape(input, start);
    }
    if (!isTokenByte(byte)) return 'unknown';
    if (i === start ? !isUppercaseLetter(byte) : !isMethodByte(byte)) upperCase = false;
  }
  return input.length - start > MAX_METHOD_CHARS ? 'unknown' : 'needMore';
}

/** A first line whose method is not upper case: HTTP only with the whole request-line shape. */
function requestLineShape(input: Buffer, start: number): FirstBytesKind | 'needMore' {
  const end = input.indexOf(0x0a, start);
  if (end < 0) return input.length - start > MAX_FIRST_LINE_BYTES ? 'unknown' : 'needMore';
  return REQUEST_LINE.test(input.toString('latin1', start, end)) ? 'http' : 'unknown';
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
