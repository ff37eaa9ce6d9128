import { NEED_MORE, type ParseResult, invalid, parsed } from './parse-result';
import { addressFromBytes } from './address-text';
import ipaddr from 'ipaddr.js';

/**
 * The PROXY protocol version 2 header (haproxy.org/download/2.9/doc/proxy-protocol.txt), sent
 * by a load balancer ahead of the client's own bytes so the gateway learns the real client
 * address. Sans-io: bytes in, parsed | needMore | invalid out.
 *
 *   12 bytes  signature \r\n\r\n\0\r\nQUIT\n
 *    1 byte   version (high nibble, must be 2) and command (low: 0 LOCAL, 1 PROXY)
 *    1 byte   address family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport (low)
 *    2 bytes  length of what follows (big endian): addresses, then TLVs
 */

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_BYTES = 16;
/**
 * Bound on the variable part. The spec allows 64 KiB; load balancers send addresses plus a few
 * small TLVs (SSL facts, unique id, authority), well under this. Larger headers are refused so a
 * peer cannot make the gateway buffer 64 KiB per connection before it has said anything.
 */
export const MAX_PROXY_V2_PAYLOAD_BYTES = 1536;

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeader =
  /** The connection comes from the balancer itself (health checks): use the socket's own address. */
  | { readonly command: 'local' }
  | { readonly command: 'proxy'; readonly family: 'tcp4' | 'tcp6'; readonly source: ProxyAddress; readonly destination: ProxyAddress }
  /** PROXY with a family we do not relay for (UNIX, UDP, UNSPEC): treated like LOCAL. */
  | { readonly command: 'proxy'; readonly family: 'unspec' };

/** TLVs are skipped, but their framing must be sound: a TLV running past the header is invalid. */
function checkTlvs(bytes: Buffer, start: number, end: number): string | null {
  let offset = start;
  while (offset < end) {
    if (end - offset < 3) return 'truncated TLV header';
    const length = bytes.readUInt16BE(offset + 1);
    offset += 3 + length;
    if (offset > end) return 'TLV runs past the end of the header';
  }
  return null;
}

export function parseProxyV2(input: Buffer): ParseResult<ProxyHeader> {
  const prefix = Math.min(input.length, PROXY_V2_SIGNATURE.length);
  if (!input.subarray(0, prefix).equals(PROXY_V2_SIGNATURE.subarray(0, prefix))) {
    if (input.subarray(0, 6).toString('latin1') === 'PROXY ') return invalid('PROXY protocol v1 (text) is not accepted; configure the balancer for v2');
    return invalid('no PROXY protocol v2 signature');
  }
  if (input.length < FIXED_BYTES) return NEED_MORE;
  const versionCommand = input[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`unsupported PROXY protocol version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`unknown PROXY command ${command}`);
  const familyByte = input[13]!;
  const length = input.readUInt16BE(14);
  if (length > MAX_PROXY_V2_PAYLOAD_BYTES) return invalid(`PROXY header of ${length} bytes exceeds ${MAX_PROXY_V2_PAYLOAD_BYTES}`);
  const total = FIXED_BYTES + length;
  if (input.length < total) return NEED_MORE;
  if (command === 0) return parsed({ command: 'local' }, total);

  const family = familyByte >> 4;
  const transport = familyByte & 0x0f;
  if (family > 3 || transport > 2) return invalid(`unknown PROXY address family/transport 0x${familyByte.toString(16)}`);
  const addressBytes = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (length < addressBytes) return invalid(`PROXY header too short for its address family (${length} < ${addressBytes})`);
  const tlvProblem = checkTlvs(input, FIXED_BYTES + addressBytes, total);
  if (tlvProblem) return invalid(tlvProblem);
  // Only TCP over IPv4/IPv6 carries a client address we can use.
  if (transport !== 1 || (family !== 1 && family !== 2)) return parsed({ command: 'proxy', family: 'unspec' }, total);
  const at = FIXED_BYTES;
  if (family === 1) {
    return parsed(
      {
        command: 'proxy',
        family: 'tcp4',
        source: { address: addressFromBytes(input.subarray(at, at + 4)), port: input.readUInt16BE(at + 8) },
        destination: { address: addressFromBytes(input.subarray(at + 4, at + 8)), port: input.readUInt16BE(at + 10) },
      },
      total,
    );
  }
  return parsed(
    {
      command: 'proxy',
      family: 'tcp6',
      source: { address: addressFromBytes(input.subarray(at, at + 16)), port: input.readUInt16BE(at + 32) },
      destination: { address: addressFromBytes(input.subarray(at + 16, at + 32)), port: input.readUInt16BE(at + 34) },
    },
    total,
  );
}

/** Encodes a PROXY v2 header (tests, the demo, and anyone checking interop). */
export function encodeProxyV2(header: ProxyHeader, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  if (header.command === 'local') {
    return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  if (header.family === 'unspec') return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x00, 0x00, 0x00])]);
  const v4 = header.family === 'tcp4';
  const addresses = Buffer.alloc(v4 ? 12 : 36);
  const write = (address: string, offset: number): void => {
    const parsed = ipaddr.parse(address);
    // A tcp6 header carries IPv4 addresses in their mapped form.
    const bytes = v4 ? parsed.toByteArray() : (parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress() : parsed).toByteArray();
    Buffer.from(bytes).copy(addresses, offset);
  };
  write(header.source.address, 0);
  write(header.destination.address, v4 ? 4 : 16);
  addresses.writeUInt16BE(header.source.port, v4 ? 8 : 32);
  addresses.writeUInt16BE(header.destination.port, v4 ? 10 : 34);
  const fixed = Buffer.from([0x21, v4 ? 0x11 : 0x21, 0, 0]);
  fixed.writeUInt16BE(addresses.length + tlvs.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, fixed, addresses, tlvs]);
}
