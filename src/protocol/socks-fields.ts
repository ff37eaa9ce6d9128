import { isUtf8 } from 'node:buffer';
import ipaddr from 'ipaddr.js';
import type { SocksInvalid, SocksParseResult } from './socks-wire';
import { ipv6Text } from './address-text';

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

/** 16 address bytes as RFC 5952 text (address-text.ts); missing bytes read as 0, extra ones are ignored. */
export function formatIpv6(bytes: Buffer): string {
  const sixteen = Buffer.alloc(16);
  bytes.copy(sixteen, 0, 0, Math.min(16, bytes.length));
  return ipv6Text(sixteen);
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
