import { isUtf8 } from 'node:buffer';
import ipaddr from 'ipaddr.js';
import { NEED_MORE } from './parse-result';

/**
 * SOCKS wire formats, sans-io: each parser takes the bytes a front-end has buffered so far and
 * says whether they hold one complete message, need more bytes, or can never become a valid
 * message. Nothing here touches a socket, logs or throws.
 *
 * Sources:
 * - SOCKS4: Ying-Da Lee, "SOCKS: A protocol for TCP proxy across firewalls" (SOCKS4.protocol).
 * - SOCKS4a: Ying-Da Lee, "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol" (SOCKS4A.protocol).
 * - RFC 1928, SOCKS Protocol Version 5.
 * - RFC 1929, Username/Password Authentication for SOCKS V5.
 * - RFC 5952, A Recommendation for IPv6 Address Text Representation.
 */

/** A destination as the client sent it. Ports are 1-65535 except where noted on the request. */
export type SocksTarget =
  /** Dotted quad. */
  | { readonly kind: 'ipv4'; readonly address: string; readonly port: number }
  /** RFC 5952 canonical text; IPv4-mapped addresses in the RFC 5952 section 5 form `::ffff:a.b.c.d`. */
  | { readonly kind: 'ipv6'; readonly address: string; readonly port: number }
  /** Printable ASCII without spaces, exactly as sent: not lower-cased, not validated as a DNS name. */
  | { readonly kind: 'domain'; readonly name: string; readonly port: number };

/**
 * Why bytes can never become a valid message, for the caller to pick its reply:
 * - `address-type`: a SOCKS5 request with an ATYP other than 1, 3 or 4. The rest of the request
 *   has no known length, so it cannot be parsed, but RFC 1928 section 6 gives it its own reply
 *   (0x08, address type not supported).
 * - `port-zero`: a CONNECT or BIND to port 0, which names no reachable service.
 * - `malformed`: everything else; the caller answers with a general failure and closes.
 *
 * This is an `invalid` result with an extra field rather than a separate kind, so that every
 * SOCKS result is still a `ParseResult` and a caller that only looks at `kind` fails closed.
 */
export type SocksInvalidCode = 'malformed' | 'address-type' | 'port-zero';

export interface SocksInvalid {
  readonly kind: 'invalid';
  readonly reason: string;
  readonly code: SocksInvalidCode;
}

/** `ParseResult<T>` (see parse-result.ts) whose `invalid` carries a `SocksInvalidCode`. */
export type SocksParseResult<T> =
  | { readonly kind: 'parsed'; readonly value: T; readonly consumed: number }
  | { readonly kind: 'needMore' }
  | SocksInvalid;

/** SOCKS4 reply codes (CD of the reply). */
export const SOCKS4_REPLY = {
  granted: 0x5a,
  rejected: 0x5b,
  identdUnreachable: 0x5c,
  identdMismatch: 0x5d,
} as const;

export type Socks4ReplyCode = (typeof SOCKS4_REPLY)[keyof typeof SOCKS4_REPLY];

/** SOCKS5 authentication methods (RFC 1928 section 3). */
export const SOCKS5_METHOD = {
  noAuthentication: 0x00,
  gssapi: 0x01,
  usernamePassword: 0x02,
  noAcceptableMethods: 0xff,
} as const;

/** SOCKS5 reply codes, the REP field (RFC 1928 section 6). */
export const SOCKS5_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowedByRuleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A known command by name; any other CD byte as its raw number, so the caller can refuse it. */
export type Socks4Command = 'connect' | 'bind' | number;

export interface Socks4Request {
  readonly command: Socks4Command;
  /** `ipv4` for SOCKS4, `domain` for SOCKS4a. Port is never 0 for connect and bind. */
  readonly target: SocksTarget;
  /** USERID as UTF-8; may be empty. */
  readonly userId: string;
  readonly isSocks4a: boolean;
}

export interface Socks4Limits {
  /** Longest USERID accepted, NUL excluded. */
  readonly maxUserIdBytes?: number;
  /** Longest SOCKS4a DOMAIN accepted, NUL excluded. */
  readonly maxDomainBytes?: number;
}

export const SOCKS4_DEFAULT_LIMITS: Readonly<Required<Socks4Limits>> = Object.freeze({
  maxUserIdBytes: 255,
  maxDomainBytes: 255,
});

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

const SOCKS4_VERSION = 0x04;
const SOCKS5_VERSION = 0x05;
// RFC 1929 section 2: the subnegotiation has its own version number, 1.
const USERPASS_VERSION = 0x01;

const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

function parsedAs<T>(value: T, consumed: number): SocksParseResult<T> {
  return { kind: 'parsed', value, consumed };
}

function malformed(reason: string): SocksInvalid {
  return { kind: 'invalid', reason, code: 'malformed' };
}

/**
 * The reply a SOCKS5 front-end sends for a request that did not parse. Only an unknown ATYP
 * has a reply of its own (RFC 1928 section 6); the rest, port 0 included, is a general failure.
 */
export function socks5ReplyCodeForInvalid(result: SocksInvalid): number {
  return result.code === 'address-type' ? SOCKS5_REPLY.addressTypeNotSupported : SOCKS5_REPLY.generalFailure;
}

/**
 * The version of a new connection's first message, from its first byte: SOCKS4 requests and
 * SOCKS5 greetings both start with their version number.
 */
export function detectSocksVersion(input: Buffer): 4 | 5 | 'needMore' | 'invalid' {
  const version = input[0];
  if (version === undefined) return 'needMore';
  if (version === SOCKS4_VERSION) return 4;
  if (version === SOCKS5_VERSION) return 5;
  return 'invalid';
}

// ---------------------------------------------------------------------------------------------
// Field readers. Each check runs as soon as the bytes it needs are present, so a message that
// can never be valid is refused early, and a prefix of a valid message is always needMore.

function readUint16(input: Buffer, offset: number): number | undefined {
  const high = input[offset];
  const low = input[offset + 1];
  return high === undefined || low === undefined ? undefined : (high << 8) | low;
}

function formatIpv4(bytes: Buffer): string {
  return Array.from(bytes).join('.');
}

function isIpv4MappedGroups(groups: readonly number[]): boolean {
  return groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
}

/** The longest run of at least two zero groups, leftmost on ties (RFC 5952 sections 4.2.2, 4.2.3). */
function findZeroRunToCompress(groups: readonly number[]): { readonly start: number; readonly length: number } | undefined {
  let best: { start: number; length: number } | undefined;
  let start = 0;
  while (start < groups.length) {
    if (groups[start] !== 0) {
      start += 1;
      continue;
    }
    let end = start;
    while (end < groups.length && groups[end] === 0) end += 1;
    if (end - start >= 2 && (best === undefined || end - start > best.length)) best = { start, length: end - start };
    start = end;
  }
  return best;
}

/**
 * RFC 5952 text for 16 address bytes (missing bytes read as 0, extra ones are ignored): lower-case hex without leading zeros (section 4.1, 4.3),
 * the longest run of zero groups as "::" (section 4.2). IPv4-mapped addresses keep the dotted
 * quad that section 5 recommends; policy later treats them as the IPv4 address they carry.
 */
export function formatIpv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let offset = 0; offset < 16; offset += 2) groups.push(readUint16(bytes, offset) ?? 0);
  if (isIpv4MappedGroups(groups)) return `::ffff:${formatIpv4(bytes.subarray(12, 16))}`;
  const hex = groups.map((group) => group.toString(16));
  const run = findZeroRunToCompress(groups);
  if (run === undefined) return hex.join(':');
  return `${hex.slice(0, run.start).join(':')}::${hex.slice(run.start + run.length).join(':')}`;
}

/**
 * Names travel on to policy, logs and upstream requests: accept only printable ASCII without
 * spaces, which keeps NUL, CR/LF and any non-ASCII byte out. Whether the name is a valid DNS
 * name is decided later, when the gateway normalises it.
 */
function isNameByte(byte: number): boolean {
  return byte >= 0x21 && byte <= 0x7e;
}

/**
 * User names end up in logs and audit records: control characters (C0 and DEL) have no place
 * in one and could forge record boundaries in a line-oriented sink.
 */
function isUserNameByte(byte: number): boolean {
  return byte >= 0x20 && byte !== 0x7f;
}

function findByteNotAllowed(bytes: Buffer, isAllowed: (byte: number) => boolean): number | undefined {
  for (const byte of bytes) if (!isAllowed(byte)) return byte;
  return undefined;
}

function describeByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/** Decodes text that must be UTF-8; the raw bytes would otherwise be lost to U+FFFD. */
function decodeStrictUtf8(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
}

type FieldScan = { readonly kind: 'found'; readonly bytes: Buffer; readonly end: number } | { readonly kind: 'needMore' } | SocksInvalid;

/**
 * A NUL-terminated field starting at `start` (SOCKS4 USERID, SOCKS4a DOMAIN). There is no
 * length prefix, so a client could otherwise keep us waiting for a NUL forever: after
 * `maxBytes` bytes without one, the field is invalid. `end` is the offset just past the NUL.
 */
function scanNulTerminated(
  input: Buffer,
  start: number,
  maxBytes: number,
  isAllowed: (byte: number) => boolean,
  label: string,
): FieldScan {
  const window = input.subarray(start, start + maxBytes + 1);
  const nul = window.indexOf(0);
  const content = nul === -1 ? window.subarray(0, maxBytes) : window.subarray(0, nul);
  const bad = findByteNotAllowed(content, isAllowed);
  if (bad !== undefined) return malformed(`${label} contains byte ${describeByte(bad)}`);
  if (nul !== -1) return { kind: 'found', bytes: content, end: start + nul + 1 };
  if (window.length > maxBytes) return malformed(`${label} longer than ${maxBytes} bytes without a NUL terminator`);
  return NEED_MORE;
}

function limitOrDefault(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isSafeInteger(value) && value >= 0 ? value : fallback;
}

function isPortRequired(command: Socks4Command | Socks5Command): boolean {
  return command === 'connect' || command === 'bind';
}

function portZero(message: string): SocksInvalid {
  return { kind: 'invalid', reason: `${message}: destination port 0`, code: 'port-zero' };
}

// ---------------------------------------------------------------------------------------------
// SOCKS4 and SOCKS4a

function socks4CommandOf(code: number): Socks4Command {
  if (code === 0x01) return 'connect';
  if (code === 0x02) return 'bind';
  return code;
}

/**
 * One SOCKS4 or SOCKS4a request:
 *
 *   VN=4 | CD | DSTPORT (2) | DSTIP (4) | USERID | NUL            (SOCKS4)
 *   VN=4 | CD | DSTPORT (2) | 0.0.0.x   | USERID | NUL | DOMAIN | NUL   (SOCKS4a, x != 0)
 *
 * An unknown CD parses, with the raw number as `command`, so the caller can refuse it with
 * 0x5b. Every invalid result is also answered with 0x5b, if at all.
 */
export function parseSocks4Request(input: Buffer, limits?: Socks4Limits): SocksParseResult<Socks4Request> {
  const maxUserIdBytes = limitOrDefault(limits?.maxUserIdBytes, SOCKS4_DEFAULT_LIMITS.maxUserIdBytes);
  const maxDomainBytes = limitOrDefault(limits?.maxDomainBytes, SOCKS4_DEFAULT_LIMITS.maxDomainBytes);

  const version = input[0];
  if (version === undefined) return NEED_MORE;
  if (version !== SOCKS4_VERSION) return malformed(`SOCKS4 request version ${version}, expected 4`);
  const code = input[1];
  if (code === undefined) return NEED_MORE;
  const command = socks4CommandOf(code);
  const port = readUint16(input, 2);
  if (port === undefined) return NEED_MORE;
  if (port === 0 && isPortRequired(command)) return portZero('SOCKS4 request');
  if (input.length < 8) return NEED_MORE;
  const ip = input.subarray(4, 8);
  // SOCKS4a: "0.0.0.x with x nonzero" marks a request whose destination is the DOMAIN after
  // USERID. 0.0.0.0 is neither a usable destination nor a 4a marker.
  const isSocks4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0;
  if (isSocks4a && ip[3] === 0) return malformed('SOCKS4 request to 0.0.0.0');

  const user = scanNulTerminated(input, 8, maxUserIdBytes, isUserNameByte, 'SOCKS4 USERID');
  if (user.kind !== 'found') return user;
  const userId = decodeStrictUtf8(user.bytes);
  if (userId === undefined) return malformed('SOCKS4 USERID is not UTF-8');
  if (!isSocks4a) return parsedAs({ command, target: { kind: 'ipv4', address: formatIpv4(ip), port }, userId, isSocks4a }, user.end);

  const domain = scanNulTerminated(input, user.end, maxDomainBytes, isNameByte, 'SOCKS4a DOMAIN');
  if (domain.kind !== 'found') return domain;
  if (domain.bytes.length === 0) return malformed('SOCKS4a DOMAIN is empty');
  return parsedAs({ command, target: { kind: 'domain', name: domain.bytes.toString('latin1'), port }, userId, isSocks4a }, domain.end);
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 0xffff;
}

/** IPv4 bytes of a dotted quad or of an IPv4-mapped IPv6 address, as a dual-stack socket reports it. */
function ipv4BytesOf(text: string): Buffer | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return Buffer.from(ipaddr.IPv4.parse(text).toByteArray());
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.isIPv4MappedAddress() ? Buffer.from(v6.toIPv4Address().toByteArray()) : undefined;
}

function ipv6BytesOf(text: string): Buffer | undefined {
  return ipaddr.IPv6.isValid(text) ? Buffer.from(ipaddr.IPv6.parse(text).toByteArray()) : undefined;
}

function encodePort(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port, 0);
  return bytes;
}

function isSocks4ReplyCode(code: number): code is Socks4ReplyCode {
  return (Object.values(SOCKS4_REPLY) as readonly number[]).includes(code);
}

/**
 * SOCKS4 reply: VN=0 | CD | DSTPORT (2) | DSTIP (4). VN is 0, not 4, as the SOCKS4 document
 * specifies. DSTPORT/DSTIP matter only for BIND; CONNECT clients ignore them.
 *
 * Never throws: a code outside 0x5a-0x5d is sent as 0x5b (rejected) so that a caller bug can
 * never grant a request, and a bound address that is not IPv4 with a port 0-65535 is sent as
 * 0.0.0.0:0.
 */
export function encodeSocks4Reply(code: Socks4ReplyCode, bound?: { readonly address: string; readonly port: number }): Buffer {
  const address = bound !== undefined && isPort(bound.port) ? ipv4BytesOf(bound.address) : undefined;
  return Buffer.concat([
    Buffer.from([0x00, isSocks4ReplyCode(code) ? code : SOCKS4_REPLY.rejected]),
    address !== undefined && bound !== undefined ? encodePort(bound.port) : Buffer.alloc(2),
    address ?? Buffer.alloc(4),
  ]);
}

// ---------------------------------------------------------------------------------------------
// SOCKS5 (RFC 1928) and username/password (RFC 1929)

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

type Socks5Address =
  | { readonly kind: 'ipv4'; readonly address: string }
  | { readonly kind: 'ipv6'; readonly address: string }
  | { readonly kind: 'domain'; readonly name: string };

type AddressRead = { readonly kind: 'found'; readonly address: Socks5Address; readonly end: number } | { readonly kind: 'needMore' } | SocksInvalid;

/** ATYP and DST.ADDR starting at `offset` (RFC 1928 section 5). */
function readSocks5Address(input: Buffer, offset: number): AddressRead {
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
