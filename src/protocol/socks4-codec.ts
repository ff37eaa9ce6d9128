import { NEED_MORE } from './parse-result';
import {
  decodeStrictUtf8,
  describeByte,
  encodePort,
  findByteNotAllowed,
  formatIpv4,
  ipv4BytesOf,
  isNameByte,
  isPort,
  isPortRequired,
  isUserNameByte,
  malformed,
  parsedAs,
  portZero,
  readUint16,
} from './socks-fields';
import { SOCKS4_REPLY, SOCKS4_VERSION, type Socks4ReplyCode, type SocksInvalid, type SocksParseResult, type SocksTarget } from './socks-wire';

/**
 * SOCKS4 and SOCKS4a, sans-io (see socks-wire.ts).
 *
 * Sources:
 * - SOCKS4: Ying-Da Lee, "SOCKS: A protocol for TCP proxy across firewalls" (SOCKS4.protocol).
 * - SOCKS4a: Ying-Da Lee, "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol" (SOCKS4A.protocol).
 */

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

type FieldScan = { readonly kind: 'found'; readonly bytes: Buffer; readonly end: number } | { readonly kind: 'needMore' } | SocksInvalid;

/**
 * A NUL-terminated field starting at `start` (SOCKS4 USERID, SOCKS4a DOMAIN). There is no
 * length prefix, so a client could otherwise keep us waiting for a NUL forever: after
 * `maxBytes` bytes without one, the field is invalid. `end` is the offset just past the NUL.
 */
function scanNulTerminated(input: Buffer, start: number, maxBytes: number, isAllowed: (byte: number) => boolean, label: string): FieldScan {
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
