import ipaddr from 'ipaddr.js';

/**
 * The one text form of an IP address in tollgate, whatever it was read from (a socket, a SOCKS
 * or PROXY v2 header, a DNS answer, a request): IPv4 as a dotted quad, IPv6 per RFC 5952, and an
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, `::ffff:c000:207`) as the IPv4 address it
 * carries, which is what a dual-stack socket reaches and what people recognise in a log. Policy
 * matching, the destination guard, the loop check and the audit records all see this form.
 */
function canonical(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (address.kind() === 'ipv4') return address.toString();
  const v6 = address as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toRFC5952String();
}

/** An address as text (any notation ipaddr.js accepts); text that is not an address is returned as given. */
export function addressText(text: string): string {
  return ipaddr.isValid(text) ? canonical(ipaddr.parse(text)) : text;
}

/** 4 or 16 network-order bytes (a SOCKS or PROXY v2 address field) as text. */
export function addressFromBytes(bytes: Uint8Array): string {
  return canonical(ipaddr.fromByteArray([...bytes]));
}

/**
 * The RFC 5952 text of 16 IPv6 address bytes as a wire format carries them (a SOCKS5 target),
 * IPv4-mapped addresses in the mixed notation of section 5 (`::ffff:192.0.2.7`). Policy and
 * records never see this form: normaliseHost and addressText make it the IPv4 address.
 */
export function ipv6Text(bytes: Uint8Array): string {
  const address = ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6;
  return address.isIPv4MappedAddress() ? `::ffff:${address.toIPv4Address().toString()}` : address.toRFC5952String();
}

/** An address as it appears in an authority or URL: IPv6 in brackets. */
export function bracketedAddress(text: string): string {
  const address = addressText(text);
  return address.includes(':') ? `[${address}]` : address;
}
