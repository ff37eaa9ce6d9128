import { NEED_MORE } from './parse-result';
import {
  decodeStrictUtf8,
  describeByte,
  encodePort,
  findByteNotAllowed,
  formatIpv4,
  formatIpv6,
  ipv4BytesOf,
  ipv6BytesOf,
  isNameByte,
  isPort,
  isPortRequired,
  isUserNameByte,
  malformed,
  parsedAs,
  portZero,
  readUint16,
} from './socks-fields';
import { SOCKS5_METHOD, SOCKS5_REPLY, SOCKS5_VERSION, type SocksInvalid, type SocksParseResult, type SocksTarget } from './socks-wire';

/**
 * SOCKS5, sans-io (see socks-wire.ts).
 *
 * Sources:
 * - RFC 1928, SOCKS Protocol Version 5.
 * - RFC 1929, Username/Password Authentication for SOCKS V5.
 */

export interface Socks5Greeting {
  /** METHODS in the order offered; never empty. */
  readonly methods: readonly number[];
}

export interface Socks5Credentials {
  /** UNAME as UTF-8; may be empty. */
  readonly username: string;
  /** PASSWD as UTF-8; may be empty. */
  readonly password: string;
}

/** A known command by name; any other CMD byte as its raw number, so the caller can reply 0x07. */
export type Socks5Command = 'connect' | 'bind' | 'udp-associate' | number;

export interface Socks5Request {
  readonly command: Socks5Command;
  /**
   * Port is never 0 for connect and bind. For udp-associate it may be 0 (and the address
   * 0.0.0.0): RFC 1928 section 4 tells a client that does not yet know its UDP source to send
   * all zeros.
   */
  readonly target: SocksTarget;
}

/** The address a reply reports (BND.ADDR / BND.PORT). */
export interface SocksBoundAddress {
  readonly kind: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly port: number;
}

// RFC 1929 section 2: the subnegotiation has its own version number, 1.
const USERPASS_VERSION = 0x01;

const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/**
 * The reply a SOCKS5 front-end sends for a request that did not parse. Only an unknown ATYP
 * has a reply of its own (RFC 1928 section 6); the rest, port 0 included, is a general failure.
 */
export function socks5ReplyCodeForInvalid(result: SocksInvalid): number {
  return result.code === 'address-type' ? SOCKS5_REPLY.addressTypeNotSupported : SOCKS5_REPLY.generalFailure;
}

/**
 * The client's greeting (RFC 1928 section 3): VER=5 | NMETHODS | METHODS (NMETHODS bytes).
 * NMETHODS 0 is invalid: the reply must pick one of the offered methods, and there are none.
 */
export function parseSocks5Greeting(input: Buffer): SocksParseResult<Socks5Greeting> {
  const version = input[0];
  if (version === undefined) return NEED_MORE;
  if (version !== SOCKS5_VERSION) return malformed(`SOCKS5 greeting version ${version}, expected 5`);
  const count = input[1];
  if (count === undefined) return NEED_MORE;
  if (count === 0) return malformed('SOCKS5 greeting offers no methods (NMETHODS 0)');
  const end = 2 + count;
  if (input.length < end) return NEED_MORE;
  return parsedAs({ methods: Array.from(input.subarray(2, end)) }, end);
}

function isByte(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xff;
}

/**
 * Method selection (RFC 1928 section 3): VER=5 | METHOD. A value that is not a byte is sent as
 * 0xFF, no acceptable methods, after which the client closes: a caller bug fails closed.
 */
export function encodeSocks5MethodSelection(method: number): Buffer {
  return Buffer.from([SOCKS5_VERSION, isByte(method) ? method : SOCKS5_METHOD.noAcceptableMethods]);
}

/**
 * Username/password request (RFC 1929 section 2): VER=1 | ULEN | UNAME | PLEN | PASSWD.
 * RFC 1929 gives both lengths as 1-255, but clients send an empty password (curl with
 * `--proxy-user name:`), so 0 parses and the authenticator refuses what it does not know.
 * Both fields must be UTF-8; a user name must not contain control characters.
 */
export function parseSocks5UserPass(input: Buffer): SocksParseResult<Socks5Credentials> {
  const version = input[0];
  if (version === undefined) return NEED_MORE;
  if (version !== USERPASS_VERSION) return malformed(`username/password subnegotiation version ${version}, expected 1`);
  const usernameLength = input[1];
  if (usernameLength === undefined) return NEED_MORE;
  const usernameBytes = input.subarray(2, 2 + usernameLength);
  const bad = findByteNotAllowed(usernameBytes, isUserNameByte);
  if (bad !== undefined) return malformed(`username contains byte ${describeByte(bad)}`);
  const passwordLengthOffset = 2 + usernameLength;
  const passwordLength = input[passwordLengthOffset];
  if (passwordLength === undefined) return NEED_MORE;
  const end = passwordLengthOffset + 1 + passwordLength;
  if (input.length < end) return NEED_MORE;
  const username = decodeStrictUtf8(usernameBytes);
  if (username === undefined) return malformed('username is not UTF-8');
  const password = decodeStrictUtf8(input.subarray(passwordLengthOffset + 1, end));
  if (password === undefined) return malformed('password is not UTF-8');
  return parsedAs({ username, password }, end);
}

/**
 * Subnegotiation status (RFC 1929 section 2): VER=1 | STATUS, 0x00 success. On failure RFC 1929
 * requires the server to close the connection after sending it.
 */
export function encodeSocks5AuthStatus(ok: boolean): Buffer {
  return Buffer.from([USERPASS_VERSION, ok === true ? 0x00 : 0x01]);
}

function socks5CommandOf(code: number): Socks5Command {
  if (code === 0x01) return 'connect';
  if (code === 0x02) return 'bind';
  if (code === 0x03) return 'udp-associate';
  return code;
}

export type Socks5Address = { readonly kind: 'ipv4'; readonly address: string } | { readonly kind: 'ipv6'; readonly address: string } | { readonly kind: 'domain'; readonly name: string };

export type AddressRead = { readonly kind: 'found'; readonly address: Socks5Address; readonly end: number } | { readonly kind: 'needMore' } | SocksInvalid;

/** ATYP and DST.ADDR starting at `offset` (RFC 1928 section 5); also the UDP header's (socks5-udp.ts). */
export function readSocks5Address(input: Buffer, offset: number): AddressRead {
  const type = input[offset];
  if (type === undefined) return NEED_MORE;
  const start = offset + 1;
  switch (type) {
    case ATYP_IPV4: {
      const end = start + 4;
      if (input.length < end) return NEED_MORE;
      return { kind: 'found', address: { kind: 'ipv4', address: formatIpv4(input.subarray(start, end)) }, end };
    }
    case ATYP_IPV6: {
      const end = start + 16;
      if (input.length < end) return NEED_MORE;
      return { kind: 'found', address: { kind: 'ipv6', address: formatIpv6(input.subarray(start, end)) }, end };
    }
    case ATYP_DOMAIN: {
      // "The first octet of the address field contains the number of octets of name that
      // follow, there is no terminating NUL octet."
      const length = input[start];
      if (length === undefined) return NEED_MORE;
      if (length === 0) return malformed('SOCKS5 request has an empty domain name');
      const end = start + 1 + length;
      const name = input.subarray(start + 1, end);
      const bad = findByteNotAllowed(name, isNameByte);
      if (bad !== undefined) return malformed(`SOCKS5 domain name contains byte ${describeByte(bad)}`);
      if (input.length < end) return NEED_MORE;
      return { kind: 'found', address: { kind: 'domain', name: name.toString('latin1') }, end };
    }
    default:
      return { kind: 'invalid', reason: `SOCKS5 request address type ${type} is not supported`, code: 'address-type' };
  }
}

/**
 * A request (RFC 1928 section 4): VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT (2).
 *
 * The caller's replies: an unknown CMD parses with the raw number as `command` (reply 0x07,
 * command not supported); an unknown ATYP is invalid with code `address-type` (reply 0x08);
 * anything else invalid is a general failure (0x01), see `socks5ReplyCodeForInvalid`.
 */
export function parseSocks5Request(input: Buffer): SocksParseResult<Socks5Request> {
  const version = input[0];
  if (version === undefined) return NEED_MORE;
  if (version !== SOCKS5_VERSION) return malformed(`SOCKS5 request version ${version}, expected 5`);
  const code = input[1];
  if (code === undefined) return NEED_MORE;
  const reserved = input[2];
  if (reserved === undefined) return NEED_MORE;
  if (reserved !== 0x00) return malformed(`SOCKS5 request reserved byte is ${describeByte(reserved)}, expected 0x00`);
  const address = readSocks5Address(input, 3);
  if (address.kind !== 'found') return address;
  const port = readUint16(input, address.end);
  if (port === undefined) return NEED_MORE;
  const command = socks5CommandOf(code);
  if (port === 0 && isPortRequired(command)) return portZero('SOCKS5 request');
  return parsedAs({ command, target: { ...address.address, port } }, address.end + 2);
}

/**
 * A reply (RFC 1928 section 6): VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT (2), with
 * BND 0.0.0.0:0 unless given.
 *
 * Never throws: a REP that is not a byte is sent as 0x01 (general failure), so that a caller bug
 * can never report success; a bound address that is not a valid address of its kind with a
 * port 0-65535 is sent as 0.0.0.0:0. An IPv4-mapped address given as `ipv4` is sent as IPv4.
 */
export function encodeSocks5Reply(code: number, bound?: SocksBoundAddress): Buffer {
  const header = Buffer.from([SOCKS5_VERSION, isByte(code) ? code : SOCKS5_REPLY.generalFailure, 0x00]);
  if (bound !== undefined && isPort(bound.port)) {
    const v6 = bound.kind === 'ipv6' ? ipv6BytesOf(bound.address) : undefined;
    if (v6 !== undefined) return Buffer.concat([header, Buffer.from([ATYP_IPV6]), v6, encodePort(bound.port)]);
    const v4 = bound.kind === 'ipv4' ? ipv4BytesOf(bound.address) : undefined;
    if (v4 !== undefined) return Buffer.concat([header, Buffer.from([ATYP_IPV4]), v4, encodePort(bound.port)]);
  }
  return Buffer.concat([header, Buffer.from([ATYP_IPV4]), Buffer.alloc(4), Buffer.alloc(2)]);
}
