import { invalid, NEED_MORE, parsed, type ParseResult } from './parse-result';

/**
 * What the gateway needs from a TLS ClientHello to decide where a connection may go, read
 * without terminating TLS. Every field is taken from the bytes as sent; nothing is verified
 * cryptographically, so these are the client's claims, not facts about the peer.
 */
export interface ClientHello {
  /** server_name host_name (RFC 6066 section 3), lower-cased ASCII, otherwise as sent; null if absent. */
  readonly sni: string | null;
  /** ALPN protocol names (RFC 7301 section 3.1) in client order, one char per byte (latin1); [] if absent. */
  readonly alpn: readonly string[];
  /** ClientHello.legacy_version (client_version before TLS 1.3), e.g. 0x0303. */
  readonly legacyVersion: number;
  /** supported_versions (RFC 8446 section 4.2.1) in client order, GREASE included; [] if absent. */
  readonly supportedVersions: readonly number[];
  /** encrypted_client_hello (0xfe0d) is present: `sni` is then the outer, public name. */
  readonly hasEncryptedClientHello: boolean;
  /** Bytes of the TLS records that carried the whole ClientHello message; equals `consumed`. */
  readonly recordBytes: number;
}

export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

export type FirstBytesKind = 'tls' | 'http' | 'unknown';

// RFC 8446 section 5.1: ContentType handshake, and TLSPlaintext.length MUST NOT exceed 2^14.
// We allow the 2^14 + 256 bound of TLSCiphertext (section 5.2) to stay lenient with odd
// clients while still bounding every record.
const CONTENT_TYPE_HANDSHAKE = 22;
const RECORD_HEADER_BYTES = 5;
const MAX_RECORD_PAYLOAD_BYTES = 2 ** 14 + 256;
// RFC 8446 section 4: Handshake header is msg_type (1 byte) + uint24 length.
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
const HANDSHAKE_HEADER_BYTES = 4;
const RANDOM_BYTES = 32;
const MAX_LEGACY_SESSION_ID_BYTES = 32;
const SSL2_FIRST_BYTE_FLAG = 0x80;

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ENCRYPTED_CLIENT_HELLO = 0xfe0d;
const SERVER_NAME_TYPE_HOST_NAME = 0;

// RFC 6066 section 3 says HostName is ASCII without a trailing NUL; we further restrict it to
// the characters a DNS name can carry (letters, digits, '-', '.', and '_' which real service
// names use) so that nothing else - NUL, spaces, control or non-ASCII bytes - reaches policy.
const HOST_NAME_BYTES = /^[A-Za-z0-9._-]+$/;

// HTTP/1.x request line (RFC 9112 section 3): method token then SP. Registered methods are at
// most 17 characters ("UPDATEREDIRECTREF"); 24 leaves room without reading far into a stream.
const MAX_METHOD_CHARS = 24;

type Invalid = { readonly kind: 'invalid'; readonly reason: string };

/** A bounds-checked reader over one buffer; every read reports failure instead of throwing. */
class Reader {
  private offset: number;

  constructor(
    private readonly bytes: Buffer,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.offset = start;
  }

  remaining(): number {
    return this.end - this.offset;
  }

  readUint8(): number | null {
    if (this.remaining() < 1) return null;
    const value = this.bytes.readUInt8(this.offset);
    this.offset += 1;
    return value;
  }

  readUint16(): number | null {
    if (this.remaining() < 2) return null;
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  skip(count: number): boolean {
    if (this.remaining() < count) return false;
    this.offset += count;
    return true;
  }

  /** A sub-reader over the next `length` bytes, which this reader then skips. */
  readVector(length: number): Reader | null {
    if (this.remaining() < length) return null;
    const child = new Reader(this.bytes, this.offset, this.offset + length);
    this.offset += length;
    return child;
  }

  readBytes(length: number): Buffer | null {
    if (this.remaining() < length) return null;
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}

function isInvalid(value: unknown): value is Invalid {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'invalid';
}

function effectiveLimit(maxBytes: number): number {
  // A NaN or negative limit would silently disable the bound; fall back to the default.
  return Number.isFinite(maxBytes) && maxBytes >= 0 ? Math.floor(maxBytes) : MAX_CLIENT_HELLO_BYTES;
}

function tooLarge(limit: number): Invalid {
  return invalid(`ClientHello larger than ${limit} bytes`);
}

/**
 * Checks whatever part of a record header is present, so that garbage is refused on its first
 * byte rather than after a full header arrives. Returns null if nothing present is wrong.
 */
function checkRecordHeader(input: Buffer, start: number, isFirst: boolean): Invalid | null {
  if (start < input.length) {
    const contentType = input.readUInt8(start);
    if (isFirst && (contentType & SSL2_FIRST_BYTE_FLAG) !== 0) {
      return invalid('SSLv2-style ClientHello is not supported');
    }
    if (contentType !== CONTENT_TYPE_HANDSHAKE) {
      // RFC 8446 section 5.1: handshake messages MUST NOT be interleaved with other record types.
      return isFirst
        ? invalid(`not a TLS handshake record (content type ${contentType})`)
        : invalid(`record of content type ${contentType} interleaved before the ClientHello was complete`);
    }
  }
  if (start + 1 < input.length && input.readUInt8(start + 1) !== 3) {
    return invalid('TLS record version major is not 3');
  }
  if (start + RECORD_HEADER_BYTES <= input.length) {
    const length = input.readUInt16BE(start + 3);
    // RFC 8446 section 5.1: zero-length handshake fragments MUST NOT be sent.
    if (length === 0) return invalid('empty TLS record');
    if (length > MAX_RECORD_PAYLOAD_BYTES) return invalid(`TLS record length ${length} exceeds ${MAX_RECORD_PAYLOAD_BYTES}`);
  }
  return null;
}

/** The handshake message as it is reassembled from record fragments (RFC 8446 section 5.1). */
interface Reassembly {
  readonly fragments: Buffer[];
  /** The first bytes of the handshake message, up to its 4-byte header. */
  header: readonly number[];
  received: number;
}

/** The header bytes known once `fragment` (possibly a partial record) is appended. */
function extendHeader(header: readonly number[], fragment: Buffer): number[] {
  const extended = [...header];
  for (let i = 0; i < fragment.length && extended.length < HANDSHAKE_HEADER_BYTES; i++) {
    extended.push(fragment.readUInt8(i));
  }
  return extended;
}

/** Total handshake message bytes (header included), once its uint24 length is known. */
function declaredMessageBytes(header: readonly number[]): number | null {
  const [, len0, len1, len2] = header;
  if (len0 === undefined || len1 === undefined || len2 === undefined) return null;
  return HANDSHAKE_HEADER_BYTES + ((len0 << 16) | (len1 << 8) | len2);
}

/** Validates as much of the handshake header as is known. */
function checkHandshakeHeader(header: readonly number[], limit: number): Invalid | null {
  const [type] = header;
  if (type !== undefined && type !== HANDSHAKE_TYPE_CLIENT_HELLO) {
    return invalid(`handshake message type ${type} is not ClientHello`);
  }
  const messageBytes = declaredMessageBytes(header);
  // The message plus at least one record header must fit the limit; refuse a declared size we
  // would never accept before waiting for (or buffering) its bytes.
  if (messageBytes !== null && messageBytes + RECORD_HEADER_BYTES > limit) return tooLarge(limit);
  return null;
}

type RecordWalk = { readonly kind: 'complete'; readonly message: Buffer; readonly recordBytes: number } | Invalid | { readonly kind: 'needMore' };

/**
 * Walks handshake records from the start of `input` until they carry one whole handshake
 * message. Reads only headers and slices until the message is complete, so work and memory
 * depend on bytes present, never on lengths the client declared.
 */
function reassembleHandshake(input: Buffer, limit: number): RecordWalk {
  const state: Reassembly = { fragments: [], header: [], received: 0 };
  let offset = 0;
  for (;;) {
    const headerProblem = checkRecordHeader(input, offset, offset === 0);
    if (headerProblem !== null) return headerProblem;
    if (offset + RECORD_HEADER_BYTES > limit) return tooLarge(limit);
    if (offset + RECORD_HEADER_BYTES > input.length) return NEED_MORE;
    const recordEnd = offset + RECORD_HEADER_BYTES + input.readUInt16BE(offset + 3);
    const fragment = input.subarray(offset + RECORD_HEADER_BYTES, Math.min(recordEnd, input.length));
    // Look at the handshake header even in a partial record, so that a wrong message type or
    // an oversize declared length is refused without waiting for the rest of the record.
    const header = extendHeader(state.header, fragment);
    const messageProblem = checkHandshakeHeader(header, limit);
    if (messageProblem !== null) return messageProblem;
    if (recordEnd > limit) return tooLarge(limit);
    if (recordEnd > input.length) return NEED_MORE;

    state.header = header;
    state.fragments.push(fragment);
    state.received += fragment.length;
    offset = recordEnd;
    const messageBytes = declaredMessageBytes(state.header);
    if (messageBytes !== null && state.received >= messageBytes) {
      // Nothing may follow the ClientHello in its flight (RFC 8446 section 4.1.2: the client
      // then waits for the server), so extra handshake bytes are a second message we would
      // not inspect but the server would.
      if (state.received > messageBytes) return invalid('unexpected handshake data after the ClientHello');
      return { kind: 'complete', message: joinFragments(state.fragments), recordBytes: recordEnd };
    }
  }
}

function joinFragments(fragments: readonly Buffer[]): Buffer {
  // One record is the common case; slicing avoids a copy.
  const [only] = fragments;
  return fragments.length === 1 && only !== undefined ? only : Buffer.concat(fragments);
}

/** Mutable accumulator for the extensions the gateway cares about. */
interface ExtensionFields {
  sni: string | null;
  alpn: readonly string[];
  supportedVersions: readonly number[];
  hasEncryptedClientHello: boolean;
}

/** RFC 6066 section 3: ServerNameList, of which we take the single host_name entry. */
function parseServerName(data: Reader): string | Invalid {
  const listLength = data.readUint16();
  if (listLength === null || listLength !== data.remaining() || listLength === 0) {
    return invalid('malformed server_name list');
  }
  let hostName: string | null = null;
  while (data.remaining() > 0) {
    const nameType = data.readUint8();
    const nameLength = data.readUint16();
    if (nameType === null || nameLength === null) return invalid('truncated server_name entry');
    const name = data.readBytes(nameLength);
    if (name === null) return invalid('server_name entry overruns its list');
    if (nameType !== SERVER_NAME_TYPE_HOST_NAME) continue;
    // RFC 6066 section 3: the list MUST NOT contain more than one name of the same type; two
    // host names would let the client show policy one name and the server another.
    if (hostName !== null) return invalid('more than one host_name in server_name');
    const decoded = decodeHostName(name);
    if (isInvalid(decoded)) return decoded;
    hostName = decoded;
  }
  return hostName ?? invalid('server_name has no host_name entry');
}

function decodeHostName(name: Buffer): string | Invalid {
  if (name.length === 0) return invalid('empty server_name host_name');
  // latin1 maps each byte to one char, so the check below sees every byte exactly as sent.
  const text = name.toString('latin1');
  if (!HOST_NAME_BYTES.test(text)) return invalid('server_name host_name has characters not allowed in a DNS name');
  return text.toLowerCase();
}

/** RFC 7301 section 3.1: ProtocolNameList of non-empty opaque names. */
function parseAlpn(data: Reader): readonly string[] | Invalid {
  const listLength = data.readUint16();
  if (listLength === null || listLength !== data.remaining() || listLength === 0) {
    return invalid('malformed ALPN protocol list');
  }
  const names: string[] = [];
  while (data.remaining() > 0) {
    const nameLength = data.readUint8();
    if (nameLength === null || nameLength === 0) return invalid('empty ALPN protocol name');
    const name = data.readBytes(nameLength);
    if (name === null) return invalid('ALPN protocol name overruns its list');
    // Names are opaque bytes (RFC 7301 section 6 registers ASCII ones, GREASE adds others);
    // latin1 keeps distinct byte strings distinct, which UTF-8 decoding would not.
    names.push(name.toString('latin1'));
  }
  return names;
}

/** RFC 8446 section 4.2.1: the ClientHello form, a uint8-length list of uint16 versions. */
function parseSupportedVersions(data: Reader): readonly number[] | Invalid {
  const listLength = data.readUint8();
  if (listLength === null || listLength !== data.remaining() || listLength < 2 || listLength % 2 !== 0) {
    return invalid('malformed supported_versions list');
  }
  const versions: number[] = [];
  for (let version = data.readUint16(); version !== null; version = data.readUint16()) {
    versions.push(version);
  }
  return versions;
}

function applyExtension(fields: ExtensionFields, type: number, data: Reader): Invalid | null {
  switch (type) {
    case EXT_SERVER_NAME: {
      const sni = parseServerName(data);
      if (isInvalid(sni)) return sni;
      fields.sni = sni;
      return null;
    }
    case EXT_ALPN: {
      const alpn = parseAlpn(data);
      if (isInvalid(alpn)) return alpn;
      fields.alpn = alpn;
      return null;
    }
    case EXT_SUPPORTED_VERSIONS: {
      const versions = parseSupportedVersions(data);
      if (isInvalid(versions)) return versions;
      fields.supportedVersions = versions;
      return null;
    }
    case EXT_ENCRYPTED_CLIENT_HELLO:
      fields.hasEncryptedClientHello = true;
      return null;
    default:
      // Unknown and GREASE extensions (RFC 8701) are skipped: RFC 8446 section 4.2 requires
      // servers to ignore them, and so must anything sitting in front of a server.
      return null;
  }
}

/** RFC 8446 section 4.2: Extension extensions<8..2^16-1>, each type at most once. */
function parseExtensions(hello: Reader, fields: ExtensionFields): Invalid | null {
  // RFC 5246 section 7.4.1.2: a hello with nothing after compression_methods has no extensions.
  if (hello.remaining() === 0) return null;
  const blockLength = hello.readUint16();
  if (blockLength === null) return invalid('truncated extensions length');
  if (blockLength !== hello.remaining()) return invalid('extensions length does not match the ClientHello');
  const seen = new Set<number>();
  while (hello.remaining() > 0) {
    const type = hello.readUint16();
    const length = hello.readUint16();
    if (type === null || length === null) return invalid('truncated extension header');
    const data = hello.readVector(length);
    if (data === null) return invalid(`extension ${type} overruns the extensions block`);
    if (seen.has(type)) return invalid(`duplicate extension ${type}`);
    seen.add(type);
    const problem = applyExtension(fields, type, data);
    if (problem !== null) return problem;
  }
  return null;
}

/** RFC 8446 section 4.1.2 (and RFC 5246 section 7.4.1.2 for older clients). */
function parseHelloBody(message: Buffer, recordBytes: number): ParseResult<ClientHello> {
  const hello = new Reader(message, HANDSHAKE_HEADER_BYTES);
  const legacyVersion = hello.readUint16();
  if (legacyVersion === null || !hello.skip(RANDOM_BYTES)) return invalid('truncated ClientHello');

  const sessionIdLength = hello.readUint8();
  if (sessionIdLength === null || sessionIdLength > MAX_LEGACY_SESSION_ID_BYTES || !hello.skip(sessionIdLength)) {
    return invalid('malformed legacy_session_id');
  }
  const cipherSuitesLength = hello.readUint16();
  if (cipherSuitesLength === null || cipherSuitesLength === 0 || cipherSuitesLength % 2 !== 0 || !hello.skip(cipherSuitesLength)) {
    return invalid('malformed cipher_suites');
  }
  const compressionLength = hello.readUint8();
  if (compressionLength === null || compressionLength === 0 || !hello.skip(compressionLength)) {
    return invalid('malformed legacy_compression_methods');
  }

  const fields: ExtensionFields = { sni: null, alpn: [], supportedVersions: [], hasEncryptedClientHello: false };
  const problem = parseExtensions(hello, fields);
  if (problem !== null) return problem;
  return parsed({ ...fields, legacyVersion, recordBytes }, recordBytes);
}

/**
 * Parses the ClientHello at the start of a client's byte stream (all bytes received so far).
 * `needMore` while the hello is incomplete; `parsed` with `consumed` = the bytes of the records
 * that carried it; `invalid` for anything malformed, for non-handshake records before the hello
 * is complete, or when the hello does not fit in `maxBytes` of input. Never throws.
 */
export function parseClientHello(input: Buffer, maxBytes: number = MAX_CLIENT_HELLO_BYTES): ParseResult<ClientHello> {
  const walk = reassembleHandshake(input, effectiveLimit(maxBytes));
  if (walk.kind !== 'complete') return walk;
  return parseHelloBody(walk.message, walk.recordBytes);
}

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

/** An uppercase method token followed by a space, as in "GET " or "CONNECT ". */
function classifyRequestLine(input: Buffer): FirstBytesKind | 'needMore' {
  const scan = Math.min(input.length, MAX_METHOD_CHARS + 1);
  for (let i = 0; i < scan; i++) {
    const byte = input.readUInt8(i);
    if (byte === 0x20) return i > 0 ? 'http' : 'unknown';
    if (i === 0 ? !isUppercaseLetter(byte) : !isMethodByte(byte)) return 'unknown';
  }
  return input.length > MAX_METHOD_CHARS ? 'unknown' : 'needMore';
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
