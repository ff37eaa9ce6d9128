import type { Principal } from '../identity/principal';
import type { Candidate, CompiledPolicy, Pattern, PolicyRule } from '../policy/types';

/** A pattern of a rule that never decides anything, and why. */
export interface Unreachable {
  readonly rule: PolicyRule;
  readonly pattern: Pattern;
  readonly why: string;
}

/**
 * The candidates that share `pattern`, in the order the matcher tries them (the policy's own
 * index, so this cannot drift from match.ts): rules limited to users, then to groups, then for
 * everyone; among those, rules listing ports first.
 */
function samePattern(policy: CompiledPolicy, pattern: Pattern): readonly Candidate[] {
  const { index } = policy;
  switch (pattern.kind) {
    case 'exact':
      return index.exact.get(pattern.name) ?? [];
    case 'subdomains':
      return index.subdomains.get(pattern.suffix) ?? [];
    case 'domain':
      return index.domain.get(pattern.suffix) ?? [];
    case 'cidr':
      return index.cidrs.filter((c) => c.pattern.text === pattern.text);
  }
}

function appliesTo(rule: PolicyRule, principal: Principal | null, port: number): boolean {
  if (rule.ports !== null && !rule.ports.has(port)) return false;
  if (rule.users === null && rule.groups === null) return true;
  if (principal === null) return false;
  return rule.users?.has(principal.user) === true || (rule.groups !== null && principal.groups.some((g) => rule.groups!.has(g)));
}

/** A port no rule lists: stands for "any other port" (only rules without `ports` take it). */
const ANY_OTHER_PORT = -1;

/**
 * Rules (per pattern) that no request can reach: the matcher tries rules with the same pattern
 * in a fixed order, so a rule is shadowed when, for every user it applies to (the users file's
 * users, or anonymous clients) and every port it covers, a rule tried before it applies too; and
 * a rule limited to users or groups that nobody in the users file has can never match. Rules
 * with different patterns never shadow each other completely (a more specific pattern takes
 * some names, the rest still reach the less specific one), so only these cases are reported.
 * `users` is null when no users file is configured (every client is anonymous).
 */
export function findUnreachable(policy: CompiledPolicy, users: readonly Principal[] | null): Unreachable[] {
  const principals: (Principal | null)[] = [null, ...(users ?? [])];
  const out: Unreachable[] = [];
  for (const rule of policy.rules) {
    for (const pattern of rule.patterns) {
      const candidates = samePattern(policy, pattern);
      const at = candidates.findIndex((c) => c.rule === rule);
      const earlier = candidates.slice(0, Math.max(at, 0)).map((c) => c.rule);
      const ports = rule.ports !== null ? [...rule.ports] : [ANY_OTHER_PORT, ...new Set(earlier.flatMap((r) => (r.ports === null ? [] : [...r.ports])))];
      const audience = principals.filter((p) => ports.some((port) => appliesTo(rule, p, port)));
      if (audience.length === 0) {
        const who = [rule.users ? `users ${[...rule.users].join(', ')}` : '', rule.groups ? `groups ${[...rule.groups].join(', ')}` : ''].filter(Boolean).join(' or ');
        out.push({ rule, pattern, why: `limited to ${who}, but no user in the users file is one of them` });
        continue;
      }
      const reaches = audience.some((p) => ports.some((port) => appliesTo(rule, p, port) && !earlier.some((e) => appliesTo(e, p, port))));
      if (!reaches) {
        const before = earlier.filter((e) => audience.some((p) => ports.some((port) => appliesTo(e, p, port)))).map((e) => e.id);
        out.push({ rule, pattern, why: `every request it could match is decided first by ${before.join(', ')} (same pattern, tried before it)` });
      }
    }
  }
  return out;
}
