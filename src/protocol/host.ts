import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';

/**
 * A destination host after normalisation. Every front-end turns what the client wrote into one
 * of these before policy sees it, so that one spelling of a destination can never slip past a
 * rule written for another.
 */
export type Host = { readonly kind: 'name'; readonly name: string } | { readonly kind: 'ipv4'; readonly address: string } | { readonly kind: 'ipv6'; readonly address: string };

export type HostResult = { readonly ok: true; readonly host: Host } | { readonly ok: false; readonly reason: string };

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
// Letters, digits and hyphen (RFC 1123), plus underscore, which real names carry (service
// labels, some CDN hosts) and which resolvers accept.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
// After the WHATWG parser, an IPv4 address is always a dotted quad; anything else is a name.
// Checked first because ipaddr.js validates by throwing, which cost 7% of the gateway's CPU
// on plain HTTP in the bench (one normalisation per request).
const DOTTED_QUAD = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

function fail(reason: string): HostResult {
  return { ok: false, reason };
}

function fromAddress(addr: ipaddr.IPv4 | ipaddr.IPv6): Host {
  if (addr.kind() === 'ipv6') {
    const v6 = addr as ipaddr.IPv6;
    // An IPv4-mapped address is dialled as IPv4; policy and the destination guard must see
    // the same IPv4 address the socket will reach.
    if (v6.isIPv4MappedAddress()) return { kind: 'ipv4', address: v6.toIPv4Address().toString() };
    return { kind: 'ipv6', address: v6.toRFC5952String() };
  }
  return { kind: 'ipv4', address: addr.toString() };
}

function normaliseIpv6(text: string): HostResult {
  // A zone id names a local interface: it selects a link, not a destination, and has no
  // business in a request to an egress gateway.
  if (text.includes('%')) return fail('IPv6 zone identifiers are not allowed in a destination');
  if (!ipaddr.IPv6.isValid(text)) return fail(`"${text}" is not a valid IPv6 address`);
  return { ok: true, host: fromAddress(ipaddr.IPv6.parse(text)) };
}

/**
 * Normalises a host as written by a client: a DNS name, an IPv4 address in any spelling the
 * WHATWG URL parser accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`), or an IPv6
 * address with or without brackets. Names are lower-cased, converted from IDN to punycode
 * (UTS #46 via Node's URL parser) and lose one trailing dot. The result never needs the
 * system resolver to interpret it: an address spelled as a "name" comes back as an address.
 */
export function normaliseHost(raw: string): HostResult {
  if (raw.length === 0) return fail('empty host');
  if (raw.length > 1024) return fail('host longer than 1024 characters');
  if (raw.startsWith('[')) {
    if (!raw.endsWith(']')) return fail('unterminated IPv6 literal');
    return normaliseIpv6(raw.slice(1, -1));
  }
  if (raw.includes(':')) return normaliseIpv6(raw);
  if (raw.includes('%')) return fail('percent-encoding is not allowed in a host name');

  // domainToASCII runs the WHATWG host parser: UTS #46 mapping, punycode, and the IPv4 number
  // parser that makes "0x7f.1" an address. It returns "" for anything invalid, including a
  // name whose last label is numeric but not a valid address ("1.2.3.256", "foo.1").
  const ascii = domainToASCII(raw.toLowerCase());
  if (ascii === '') return fail(`"${raw}" is not a valid host name or address`);
  if (DOTTED_QUAD.test(ascii) && ipaddr.IPv4.isValidFourPartDecimal(ascii)) return { ok: true, host: fromAddress(ipaddr.IPv4.parse(ascii)) };

  const name = ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
  if (name.length === 0) return fail('empty host');
  if (name.length > MAX_NAME_LENGTH) return fail(`host name longer than ${MAX_NAME_LENGTH} characters`);
  for (const label of name.split('.')) {
    if (label.length === 0) return fail(`"${raw}" has an empty label`);
    if (label.length > MAX_LABEL_LENGTH) return fail(`"${raw}" has a label longer than ${MAX_LABEL_LENGTH} characters`);
    if (!LABEL.test(label)) return fail(`"${raw}" has an invalid label "${label}"`);
  }
  return { ok: true, host: { kind: 'name', name } };
}

/** The host as text: a name, a dotted quad or an IPv6 address without brackets. */
export function hostText(host: Host): string {
  return host.kind === 'name' ? host.name : host.address;
}

/** The host as it appears in an authority or URL: IPv6 in brackets. */
export function hostAuthorityText(host: Host): string {
  return host.kind === 'ipv6' ? `[${host.address}]` : hostText(host);
}

export function isSameHost(a: Host, b: Host): boolean {
  return a.kind === b.kind && hostText(a) === hostText(b);
}
