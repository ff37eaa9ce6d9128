import { invalid, type Invalid } from './parse-result';
import type { TlsReader } from './tls-reader';

/**
 * The ClientHello extensions the gateway decides on: server_name (RFC 6066), ALPN (RFC 7301),
 * supported_versions (RFC 8446) and whether ECH is in use. Every other extension is skipped.
 */

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ENCRYPTED_CLIENT_HELLO = 0xfe0d;
const SERVER_NAME_TYPE_HOST_NAME = 0;

// RFC 6066 section 3 says HostName is ASCII without a trailing NUL; we further restrict it to
// the characters a DNS name can carry (letters, digits, '-', '.', and '_' which real service
// names use) so that nothing else - NUL, spaces, control or non-ASCII bytes - reaches policy.
const HOST_NAME_BYTES = /^[A-Za-z0-9._-]+$/;

function isInvalid(value: unknown): value is Invalid {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'invalid';
}

/** Mutable accumulator for the extensions the gateway cares about. */
export interface ExtensionFields {
  sni: string | null;
  alpn: readonly string[];
  supportedVersions: readonly number[];
  hasEncryptedClientHello: boolean;
}

/** RFC 6066 section 3: ServerNameList, of which we take the single host_name entry. */
function parseServerName(data: TlsReader): string | Invalid {
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
function parseAlpn(data: TlsReader): readonly string[] | Invalid {
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
function parseSupportedVersions(data: TlsReader): readonly number[] | Invalid {
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

function applyExtension(fields: ExtensionFields, type: number, data: TlsReader): Invalid | null {
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
export function parseExtensions(hello: TlsReader, fields: ExtensionFields): Invalid | null {
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
