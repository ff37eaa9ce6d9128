import ipaddr from 'ipaddr.js';
import type { Principal } from '../identity/principal';
import type { Host } from '../protocol/host';
import { cidrContains } from './pattern';
import type { Candidate, Pattern, PolicyIndex, PolicyRule } from './types';

/**
 * Most specific wins. The order, also documented in the README:
 *   1. an exact name (`api.example.com`);
 *   2. the longest matching suffix, where for the same suffix `*.example.com` (subdomains only)
 *      beats `.example.com` (the domain and its subdomains);
 *   3. for addresses, the longest matching prefix (an address is a /32 or /128);
 *   4. nothing matched: `default_action`.
 * Among rules with the same pattern, one limited to users beats one limited to groups, which
 * beats one for everyone; then one that lists `ports` beats one that does not. Names never match
 * address patterns and addresses never match name patterns.
 */

function push(map: Map<string, Candidate[]>, key: string, candidate: Candidate): void {
  const list = map.get(key);
  if (list) list.push(candidate);
  else map.set(key, [candidate]);
}

function principalRank(rule: PolicyRule): number {
  return rule.users !== null ? 2 : rule.groups !== null ? 1 : 0;
}

/** Restricted rules first, so the general rule for a pattern is the fallback. */
function compareWithinPattern(a: Candidate, b: Candidate): number {
  return principalRank(b.rule) - principalRank(a.rule) || Number(b.rule.ports !== null) - Number(a.rule.ports !== null);
}

function prefixLengthOf(pattern: Pattern): number {
  return pattern.kind === 'cidr' ? pattern.prefixLength : -1;
}

export function buildIndex(rules: readonly PolicyRule[]): PolicyIndex {
  const exact = new Map<string, Candidate[]>();
  const subdomains = new Map<string, Candidate[]>();
  const domain = new Map<string, Candidate[]>();
  const cidrs: Candidate[] = [];
  for (const rule of rules) {
    for (const pattern of rule.patterns) {
      const candidate = { rule, pattern };
      switch (pattern.kind) {
        case 'exact':
          push(exact, pattern.name, candidate);
          break;
        case 'subdomains':
          push(subdomains, pattern.suffix, candidate);
          break;
        case 'domain':
          push(domain, pattern.suffix, candidate);
          break;
        case 'cidr':
          cidrs.push(candidate);
          break;
      }
    }
  }
  for (const map of [exact, subdomains, domain]) for (const list of map.values()) list.sort(compareWithinPattern);
  cidrs.sort((a, b) => prefixLengthOf(b.pattern) - prefixLengthOf(a.pattern) || compareWithinPattern(a, b));
  return { exact, subdomains, domain, cidrs };
}

function appliesToPrincipal(rule: PolicyRule, principal: Principal | null): boolean {
  if (rule.users === null && rule.groups === null) return true;
  if (principal === null) return false;
  if (rule.users?.has(principal.user)) return true;
  return rule.groups !== null && principal.groups.some((g) => rule.groups!.has(g));
}

interface MatchInput {
  readonly port: number;
  readonly principal: Principal | null;
}

function appliesTo(candidate: Candidate, input: MatchInput): boolean {
  return (candidate.rule.ports === null || candidate.rule.ports.has(input.port)) && appliesToPrincipal(candidate.rule, input.principal);
}

function firstApplicable(list: readonly Candidate[] | undefined, input: MatchInput): Candidate | null {
  if (!list) return null;
  for (const candidate of list) if (appliesTo(candidate, input)) return candidate;
  return null;
}

function matchName(index: PolicyIndex, name: string, input: MatchInput): Candidate | null {
  const exact = firstApplicable(index.exact.get(name), input);
  if (exact) return exact;
  // Walk suffixes from the longest: "a.b.example.com" checks ".a.b.example.com", then
  // "*.b.example.com" and ".b.example.com", and so on.
  const own = firstApplicable(index.domain.get(name), input);
  if (own) return own;
  let dot = name.indexOf('.');
  while (dot >= 0) {
    const suffix = name.slice(dot + 1);
    const found = firstApplicable(index.subdomains.get(suffix), input) ?? firstApplicable(index.domain.get(suffix), input);
    if (found) return found;
    dot = name.indexOf('.', dot + 1);
  }
  return null;
}

function matchAddress(index: PolicyIndex, family: 'ipv4' | 'ipv6', address: string, input: MatchInput): Candidate | null {
  const bytes = ipaddr.parse(address).toByteArray();
  for (const candidate of index.cidrs) {
    const pattern = candidate.pattern;
    if (pattern.kind === 'cidr' && pattern.family === family && appliesTo(candidate, input) && cidrContains(pattern, bytes)) return candidate;
  }
  return null;
}

/** The most specific rule for a host, port and user, or null when only the default applies. */
export function findRule(index: PolicyIndex, host: Host, port: number, principal: Principal | null): Candidate | null {
  const input: MatchInput = { port, principal };
  return host.kind === 'name' ? matchName(index, host.name, input) : matchAddress(index, host.kind, host.address, input);
}
