import { HANDSHAKE_HEADER_BYTES, reassembleHandshake } from './client-hello-records';
import { type ExtensionFields, parseExtensions } from './client-hello-extensions';
import { invalid, parsed, type ParseResult } from './parse-result';
import { TlsReader } from './tls-reader';

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

const RANDOM_BYTES = 32;
const MAX_LEGACY_SESSION_ID_BYTES = 32;

function effectiveLimit(maxBytes: number): number {
  // A NaN or negative limit would silently disable the bound; fall back to the default.
  return Number.isFinite(maxBytes) && maxBytes >= 0 ? Math.floor(maxBytes) : MAX_CLIENT_HELLO_BYTES;
}

/** RFC 8446 section 4.1.2 (and RFC 5246 section 7.4.1.2 for older clients). */
function parseHelloBody(message: Buffer, recordBytes: number): ParseResult<ClientHello> {
  const hello = new TlsReader(message, HANDSHAKE_HEADER_BYTES);
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
