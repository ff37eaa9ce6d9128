import ipaddr from 'ipaddr.js';
import { normaliseHost } from '../protocol/host';
import type { Pattern } from './types';

export type PatternResult = { readonly ok: true; readonly pattern: Pattern } | { readonly ok: false; readonly reason: string };

const HELP = 'write an exact name (example.com), "*.example.com" (subdomains only), ".example.com" (the domain and its subdomains), an address (203.0.113.7, 2001:db8::1) or a CIDR block (10.0.0.0/8)';

function fail(reason: string): PatternResult {
  return { ok: false, reason: `${reason}; ${HELP}` };
}

function parseCidr(text: string): PatternResult {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  // The same normalisation as destinations, so "0x7f.1/32" and "::ffff:7f00:1" mean what a
  // client writing them would reach.
  const host = normaliseHost(addressText);
  if (!host.ok || host.host.kind === 'name') return fail(`"${text}" is not a valid address or CIDR block`);
  const family = host.host.kind;
  const full = family === 'ipv4' ? 32 : 128;
  const writtenAsIpv6 = addressText.includes(':');
  let prefixLength = full;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    const written = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
    // An IPv4-mapped block is matched as IPv4, so its prefix loses the 96 mapping bits.
    const adjusted = family === 'ipv4' && writtenAsIpv6 ? written - 96 : written;
    if (written < 0 || written > (writtenAsIpv6 ? 128 : 32) || adjusted < 0) {
      return fail(`"${text}" has an invalid prefix length`);
    }
    prefixLength = adjusted;
  }
  const bytes = ipaddr.parse(host.host.address).toByteArray();
  if (!isNetworkAddress(bytes, prefixLength)) {
    return fail(`"${text}" has host bits set beyond /${prefixLength}; did you mean the network address?`);
  }
  const canonical = host.host.address;
  return { ok: true, pattern: { kind: 'cidr', text: prefixLength === full ? canonical : `${canonical}/${prefixLength}`, family, bytes, prefixLength } };
}

function isNetworkAddress(bytes: readonly number[], prefixLength: number): boolean {
  for (let bit = prefixLength; bit < bytes.length * 8; bit++) {
    const byte = bytes[bit >> 3] ?? 0;
    if ((byte >> (7 - (bit & 7))) & 1) return false;
  }
  return true;
}

function parseSuffix(text: string, rest: string): { ok: true; name: string } | { ok: false; reason: string } {
  const host = normaliseHost(rest);
  if (!host.ok) return { ok: false, reason: `"${text}": ${host.reason}` };
  if (host.host.kind !== 'name') return { ok: false, reason: `"${text}": a wildcard or domain pattern needs a name, not an address` };
  return { ok: true, name: host.host.name };
}

/** Parses one `match` entry of a policy rule into its canonical pattern. */
export function parsePattern(raw: string): PatternResult {
  const text = raw.trim();
  if (text.length === 0) return fail('empty pattern');
  if (text.startsWith('*.')) {
    const suffix = parseSuffix(text, text.slice(2));
    return suffix.ok ? { ok: true, pattern: { kind: 'subdomains', text: `*.${suffix.name}`, suffix: suffix.name } } : fail(suffix.reason);
  }
  if (text.includes('*')) return fail(`"${text}": "*" is only allowed as the whole first label ("*.example.com")`);
  if (text.startsWith('.')) {
    const suffix = parseSuffix(text, text.slice(1));
    return suffix.ok ? { ok: true, pattern: { kind: 'domain', text: `.${suffix.name}`, suffix: suffix.name } } : fail(suffix.reason);
  }
  if (text.includes('/') || text.includes(':') || /^[0-9.]+$/.test(text)) return parseCidr(text);
  const host = normaliseHost(text);
  if (!host.ok) return fail(`"${text}": ${host.reason}`);
  // A "name" such as 0x7f.1 is an address in disguise; match it as one, as destinations are.
  if (host.host.kind !== 'name') return parseCidr(host.host.address);
  return { ok: true, pattern: { kind: 'exact', text: host.host.name, name: host.host.name } };
}

/** True when `address` (already normalised, same family) lies inside a cidr pattern. */
export function cidrContains(pattern: Extract<Pattern, { kind: 'cidr' }>, addressBytes: readonly number[]): boolean {
  if (addressBytes.length !== pattern.bytes.length) return false;
  const fullBytes = pattern.prefixLength >> 3;
  for (let i = 0; i < fullBytes; i++) if (addressBytes[i] !== pattern.bytes[i]) return false;
  const remainingBits = pattern.prefixLength & 7;
  if (remainingBits === 0) return true;
  const mask = (0xff << (8 - remainingBits)) & 0xff;
  return ((addressBytes[fullBytes] ?? 0) & mask) === ((pattern.bytes[fullBytes] ?? 0) & mask);
}
