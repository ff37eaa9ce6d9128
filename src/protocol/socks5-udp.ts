import { encodePort, ipv4BytesOf, ipv6BytesOf, readUint16 } from './socks-fields';
import type { SocksTarget } from './socks-wire';
import { readSocks5Address } from './socks5-codec';

/**
 * The SOCKS5 UDP request header (RFC 1928 section 7), sans-io:
 *
 *   RSV (2, X'0000') | FRAG (1) | ATYP (1) | DST.ADDR (variable) | DST.PORT (2) | DATA
 *
 * A datagram is complete or it is nothing: UDP has no "need more", so a header cut short is
 * invalid. Fragments (FRAG != 0) parse, so that the caller can count and drop them by name;
 * RFC 1928 lets an implementation that does not reassemble drop every datagram whose FRAG is
 * not zero.
 */

export interface Socks5Datagram {
  /** FRAG: 0 for a standalone datagram; anything else is a fragment. */
  readonly frag: number;
  /** Where the client wants DATA to go; port 0 is invalid (it names no service). */
  readonly target: SocksTarget;
  /** DATA: a view into the input, not a copy. */
  readonly payload: Buffer;
}

export type Socks5DatagramResult = { readonly kind: 'parsed'; readonly value: Socks5Datagram } | { readonly kind: 'invalid'; readonly reason: string };

const ATYP_IPV4 = 0x01;
const ATYP_IPV6 = 0x04;

function invalid(reason: string): Socks5DatagramResult {
  return { kind: 'invalid', reason };
}

/** Parses one datagram a client sent to its relay port. Never throws. */
export function parseSocks5Datagram(input: Buffer): Socks5DatagramResult {
  if (input.length < 4) return invalid(`datagram of ${input.length} bytes is shorter than a SOCKS5 UDP header`);
  if (input[0] !== 0x00 || input[1] !== 0x00) return invalid(`reserved bytes are 0x${input.subarray(0, 2).toString('hex')}, expected 0x0000`);
  const frag = input[2]!;
  const address = readSocks5Address(input, 3);
  if (address.kind === 'needMore') return invalid('datagram ends inside its destination address');
  if (address.kind === 'invalid') return invalid(address.reason.replace('SOCKS5 request', 'SOCKS5 datagram'));
  const port = readUint16(input, address.end);
  if (port === undefined) return invalid('datagram ends inside its destination port');
  if (port === 0) return invalid('datagram destination port is 0');
  const target: SocksTarget = address.address.kind === 'domain' ? { kind: 'domain', name: address.address.name, port } : { ...address.address, port };
  return { kind: 'parsed', value: { frag, target, payload: input.subarray(address.end + 2) } };
}

/**
 * The header of a datagram relayed back to the client: FRAG 0 and the address and port the
 * reply came from (RFC 1928 section 7: "the UDP relay server MUST ... add the above request
 * header"). Null when `address` is not an IP address of its family: a caller bug sends nothing.
 */
export function encodeSocks5DatagramHeader(family: 4 | 6, address: string, port: number): Buffer | null {
  const bytes = family === 4 ? ipv4BytesOf(address) : ipv6BytesOf(address);
  if (bytes === undefined || !Number.isInteger(port) || port < 0 || port > 0xffff) return null;
  return Buffer.concat([Buffer.from([0x00, 0x00, 0x00, family === 4 ? ATYP_IPV4 : ATYP_IPV6]), bytes, encodePort(port)]);
}
