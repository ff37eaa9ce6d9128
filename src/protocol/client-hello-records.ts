import { invalid, NEED_MORE, type Invalid } from './parse-result';

/**
 * The TLS records that carry a ClientHello (RFC 8446 section 5.1), reassembled into the one
 * handshake message, with every header checked as soon as its bytes arrive.
 */

// RFC 8446 section 5.1: ContentType handshake, and TLSPlaintext.length MUST NOT exceed 2^14.
// We allow the 2^14 + 256 bound of TLSCiphertext (section 5.2) to stay lenient with odd
// clients while still bounding every record.
export const CONTENT_TYPE_HANDSHAKE = 22;
const RECORD_HEADER_BYTES = 5;
const MAX_RECORD_PAYLOAD_BYTES = 2 ** 14 + 256;
// RFC 8446 section 4: Handshake header is msg_type (1 byte) + uint24 length.
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
export const HANDSHAKE_HEADER_BYTES = 4;
const SSL2_FIRST_BYTE_FLAG = 0x80;

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
      return isFirst ? invalid(`not a TLS handshake record (content type ${contentType})`) : invalid(`record of content type ${contentType} interleaved before the ClientHello was complete`);
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
export function reassembleHandshake(input: Buffer, limit: number): RecordWalk {
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
