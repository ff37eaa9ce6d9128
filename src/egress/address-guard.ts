import ipaddr from 'ipaddr.js';

export type GuardVerdict = { readonly allowed: true } | { readonly allowed: false; readonly range: string; readonly reason: string };

const ALLOWED: GuardVerdict = Object.freeze({ allowed: true });

const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

/** IPv6 ranges whose addresses embed an IPv4 address that is what really gets reached. */
const EMBEDDING_RANGES = new Set(['ipv4Mapped', 'rfc6052', '6to4', 'teredo', 'rfc6145']);

/**
 * The destination guard (SSRF protection): after resolution and before dialling, refuse any
 * address that is not public unicast — loopback, RFC 1918, link-local (cloud metadata at
 * 169.254.169.254), CGNAT, multicast, unspecified, reserved, IPv6 unique-local and link-local,
 * and the IPv4 addresses embedded in IPv4-mapped, NAT64 and 6to4 forms — unless the operator
 * listed the range in `upstream.allow_addresses`. It checks the exact address that will be
 * dialled, so a DNS answer that changes between check and connect cannot slip through.
 */
export class AddressGuard {
  private readonly allowed: readonly [ipaddr.IPv4 | ipaddr.IPv6, number][];

  constructor(allowAddresses: readonly string[]) {
    this.allowed = allowAddresses.map((text) => (text.includes('/') ? ipaddr.parseCIDR(text) : hostRange(ipaddr.parse(text))));
  }

  check(address: string): GuardVerdict {
    if (!ipaddr.isValid(address)) return { allowed: false, range: 'invalid', reason: `"${address}" is not an IP address` };
    const parsed = ipaddr.parse(address);
    if (this.isListed(parsed)) return ALLOWED;
    if (parsed.kind() === 'ipv4') return classifyIpv4(parsed as ipaddr.IPv4, address);
    const v6 = parsed as ipaddr.IPv6;
    const range = v6.range();
    if (range === 'rfc6052' && !v6.match(NAT64_WELL_KNOWN)) {
      // 64:ff9b:1::/48 (RFC 8215) is a network's own NAT64 prefix: what it reaches is local.
      return { allowed: false, range: 'nat64LocalUse', reason: `${address} is in the local-use NAT64 prefix 64:ff9b:1::/48` };
    }
    if (EMBEDDING_RANGES.has(range)) {
      for (const embedded of embeddedIpv4(v6, range)) {
        if (this.isListed(embedded)) continue;
        const verdict = classifyIpv4(embedded, address);
        if (!verdict.allowed) return verdict;
      }
      return ALLOWED;
    }
    if (range === 'unicast' && v6.parts[0] === 0) {
      // ipaddr.js calls ::/8 outside its named ranges unicast; it is reserved (RFC 4291), and
      // its IPv4-compatible form ::a.b.c.d is still routed to IPv4 by some tunnelling stacks.
      return { allowed: false, range: 'reserved', reason: `${address} is in a reserved range (::/8, IPv4-compatible)` };
    }
    if (range === 'unicast') return ALLOWED;
    return { allowed: false, range, reason: `${address} is in a ${describe(range)} range` };
  }

  private isListed(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    for (const [network, prefix] of this.allowed) {
      if (network.kind() === address.kind() && address.match(network, prefix)) return true;
      // A listed IPv4 range also covers its IPv4-mapped IPv6 spelling.
      if (address.kind() === 'ipv6' && network.kind() === 'ipv4' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
        if ((address as ipaddr.IPv6).toIPv4Address().match(network, prefix)) return true;
      }
    }
    return false;
  }
}

function hostRange(address: ipaddr.IPv4 | ipaddr.IPv6): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

function classifyIpv4(address: ipaddr.IPv4, original: string): GuardVerdict {
  const range = address.range();
  if (range === 'unicast') return ALLOWED;
  const shown = original === address.toString() ? original : `${original} (${address.toString()})`;
  return { allowed: false, range, reason: `${shown} is in a ${describe(range)} range` };
}

/**
 * The IPv4 addresses an IPv6 address leads to. RFC 6052 (NAT64 /96), SIIT and mapped forms
 * carry one in the last 32 bits, 6to4 in bits 16-47; Teredo (RFC 4380) carries its server in
 * bits 32-63 and the client, inverted, in the last 32 — both are checked.
 */
function embeddedIpv4(address: ipaddr.IPv6, range: string): ipaddr.IPv4[] {
  const bytes = address.toByteArray();
  switch (range) {
    case '6to4':
      return [new ipaddr.IPv4(bytes.slice(2, 6))];
    case 'teredo':
      return [new ipaddr.IPv4(bytes.slice(4, 8)), new ipaddr.IPv4(bytes.slice(12, 16).map((b) => b ^ 0xff))];
    default:
      return [new ipaddr.IPv4(bytes.slice(12, 16))];
  }
}

function describe(range: string): string {
  switch (range) {
    case 'loopback':
      return 'loopback';
    case 'private':
      return 'private (RFC 1918)';
    case 'linkLocal':
      return 'link-local (includes cloud metadata services)';
    case 'carrierGradeNat':
      return 'carrier-grade NAT';
    case 'uniqueLocal':
      return 'IPv6 unique-local';
    case 'multicast':
      return 'multicast';
    case 'unspecified':
      return 'unspecified';
    case 'broadcast':
      return 'broadcast';
    default:
      return `reserved (${range})`;
  }
}
