import { isUtf8 } from 'node:buffer';
import ipaddr from 'ipaddr.js';
import type { SocksInvalid, SocksParseResult } from './socks-wire';

/**
 * Field readers and writers that SOCKS4 and SOCKS5 share. Each check runs as soon as the bytes
 * it needs are present, so a message that can never be valid is refused early, and a prefix of a
 * valid message is always needMore.
 *
 * Source: RFC 5952, A Recommendation for IPv6 Address Text Representation.
 */

export function parsedAs<T>(value: T, consumed: number): SocksParseResult<T> {
  return { kind: 'parsed', value, consumed };
}

export function malformed(reason: string): SocksInvalid {
  return { kind: 'invalid', reason, code: 'malformed' };
}

export function readUint16(input: Buffer, offset: number): number | undefined {
  const high = input[offset];
  const low = input[offset + 1];
  return high === undefined || low === undefined ? undefined : (high << 8) | low;
}

export function formatIpv4(bytes: Buffer): string {
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
export function isNameByte(byte: number): boolean {
  return byte >= 0x21 && byte <= 0x7e;
}

/**
 * User names end up in logs and audit records: control characters (C0 and DEL) have no place
 * in one and could forge record boundaries in a line-oriented sink.
 */
export function isUserNameByte(byte: number): boolean {
  return byte >= 0x20 && byte !== 0x7f;
}

export function findByteNotAllowed(bytes: Buffer, isAllowed: (byte: number) => boolean): number | undefined {
  for (const byte of bytes) if (!isAllowed(byte)) return byte;
  return undefined;
}

export function describeByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/** Decodes text that must be UTF-8; the raw bytes would otherwise be lost to U+FFFD. */
export function decodeStrictUtf8(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
}

export function isPortRequired(command: string | number): boolean {
  return command === 'connect' || command === 'bind';
}

export function portZero(message: string): SocksInvalid {
  return { kind: 'invalid', reason: `${message}: destination port 0`, code: 'port-zero' };
}

export function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 0xffff;
}

/** IPv4 bytes of a dotted quad or of an IPv4-mapped IPv6 address, as a dual-stack socket reports it. */
export function ipv4BytesOf(text: string): Buffer | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return Buffer.from(ipaddr.IPv4.parse(text).toByteArray());
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.isIPv4MappedAddress() ? Buffer.from(v6.toIPv4Address().toByteArray()) : undefined;
}

export function ipv6BytesOf(text: string): Buffer | undefined {
  return ipaddr.IPv6.isValid(text) ? Buffer.from(ipaddr.IPv6.parse(text).toByteArray()) : undefined;
}

export function encodePort(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port, 0);
  return bytes;
}
