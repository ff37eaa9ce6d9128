import type { Target } from '../protocol/target';
import { hostText, isSameHost, type Host } from '../protocol/host';
import { findRule } from './match';
import type { Action, CompiledPolicy, Decision, DecisionInput, FrontendKind, PolicyRule, Via } from './types';

/** deny > inspect > splice: when two names are in play, the stricter treatment wins. */
const STRICTNESS: Readonly<Record<Action, number>> = { splice: 0, inspect: 1, deny: 2 };

function isTunnel(frontend: FrontendKind): boolean {
  return frontend !== 'explicit-http' && frontend !== 'transparent-http';
}

/**
 * Whether pinning detection may splice a name inspected under `rule` (null: default_action).
 * Asked again on every decision, not only when the name was switched: a policy reload that adds
 * HTTP rules or DLP, or marks the rule required, takes effect at once.
 */
export function mayAutoSplice(rule: PolicyRule | null): boolean {
  return rule === null || rule.autoSpliceAllowed;
}

/**
 * An inspect decision for a name clients are seen to pin becomes splice, where its rule allows
 * that. The signals can be produced by any few clients on purpose, so a rule whose HTTP rules
 * or DLP splicing would switch off must opt in (see PolicyRule.autoSpliceAllowed).
 */
function withPinning(decision: Decision, host: Host, input: DecisionInput): Decision {
  if (decision.action !== 'inspect' || !mayAutoSplice(decision.rule) || host.kind !== 'name' || !input.autoSpliced?.has(host.name)) return decision;
  return {
    ...decision,
    action: 'splice',
    code: 'pinning',
    reason: `${host.name} is spliced for now: several clients rejected its minted certificate (certificate pinning); the rule says inspect`,
  };
}

function decideHost(host: Host, input: DecisionInput, policy: CompiledPolicy): Decision {
  return withPinning(decideRule(host, input, policy), host, input);
}

function decideRule(host: Host, input: DecisionInput, policy: CompiledPolicy): Decision {
  const found = findRule(policy.index, host, input.port, input.principal);
  if (!found) {
    return {
      action: policy.defaultAction,
      code: 'default',
      rule: null,
      pattern: null,
      reason: `no rule matches ${hostText(host)}; default_action is ${policy.defaultAction}`,
      policyVersion: policy.version,
      via: routeFor(policy, input.target, input.port),
    };
  }
  const { rule, pattern } = found;
  return {
    action: rule.action,
    code: 'rule',
    rule,
    pattern: pattern.text,
    reason: rule.reason ?? `rule ${rule.id} (${pattern.text}) says ${rule.action}`,
    policyVersion: policy.version,
    via: routeFor(policy, input.target, input.port),
  };
}

function isPortAllowed(decision: Decision, input: DecisionInput, policy: CompiledPolicy): boolean {
  if (decision.rule?.ports?.has(input.port)) return true;
  // SOCKS5 UDP datagrams have their own list (allowed_ports.udp): a TCP port is no UDP port.
  if (input.frontend === 'socks-udp') return policy.allowedPorts.udp.has(input.port);
  const allowed = isTunnel(input.frontend) ? policy.allowedPorts.tunnel : policy.allowedPorts.http;
  return allowed.has(input.port);
}

/**
 * The one policy decision for a flow. Pure: the same input and policy always give the same
 * decision, and nothing here performs I/O.
 *
 * A ClientHello naming a different host than the target is decided for that name too, and the
 * stricter of the two decisions wins, so a client cannot reach a denied name by tunnelling to
 * an allowed one. When both are inspected and the target is an address, the server name's
 * decision stands: the origin connection is verified for that name, so its rules govern.
 *
 * An inspected flow has one name: its origin connection is verified for the server name (else
 * the target), and every request inside it is governed by that name's rule. A name target and
 * a server name that differ would let one name choose the rule while the other chooses the
 * origin, so such a flow is refused (`fronting`); see also `checkRequestAuthority`.
 */
export function decide(input: DecisionInput, policy: CompiledPolicy): Decision {
  const byTarget = decideHost(input.target, input, policy);
  if (byTarget.action !== 'deny' && !isPortAllowed(byTarget, input, policy)) {
    return {
      ...byTarget,
      action: 'deny',
      code: 'port',
      reason: `port ${input.port} is not allowed for ${hostText(input.target)} (allowed_ports, or list it in the rule's ports)`,
    };
  }
  if (byTarget.action === 'deny' || input.sni === null || isSameHost(input.sni, input.target)) return byTarget;

  const bySni = decideHost(input.sni, input, policy);
  const sniGoverns =
    STRICTNESS[bySni.action] > STRICTNESS[byTarget.action] || (bySni.action === 'inspect' && byTarget.action === 'inspect' && input.target.kind !== 'name' && input.sni.kind === 'name');
  const decision: Decision = sniGoverns
    ? { ...bySni, code: 'sni', reason: `the TLS server name ${hostText(input.sni)} differs from the target ${hostText(input.target)} and is decided ${bySni.action}: ${bySni.reason}` }
    : byTarget;
  if (decision.action === 'inspect' && input.target.kind === 'name') {
    return fronting(
      decision,
      `the TLS server name ${hostText(input.sni)} differs from the tunnel's target ${hostText(input.target)}; an inspected connection must name one destination (domain fronting)`,
    );
  }
  return decision;
}

/** A refusal of an inspected flow or request that named more than one destination. */
function fronting(decision: Decision, reason: string): Decision {
  return { ...decision, action: 'deny', code: 'fronting', reason };
}

/**
 * A request inside an inspected connection: every authority it presents (Host, HTTP/2
 * :authority) must name the connection's origin, the name its TLS was verified for, so that the
 * rules chosen for that name are the rules that apply to what reaches that origin. A port, when
 * given, must be the connection's. Pure; returns `decision` itself when they agree.
 */
export function checkRequestAuthority(decision: Decision, origin: Target, authorities: readonly Target[], written: readonly string[]): Decision {
  for (let i = 0; i < authorities.length; i++) {
    const authority = authorities[i]!;
    if (isSameHost(authority.host, origin.host) && authority.port === origin.port) continue;
    return fronting(decision, `the request names ${written[i] ?? hostText(authority.host)}, but its connection is for ${hostText(origin.host)}:${origin.port} (domain fronting)`);
  }
  return decision;
}

/**
 * The way out to a destination (host and port as dialled): the `via` of the most specific rule
 * for everyone that matches it, else `upstream.via`. Per destination, not per user, so that the
 * egress door (which sees only the destination) and the decision always agree; rules limited to
 * users or groups cannot set `via` (load-policy.ts).
 */
export function routeFor(policy: CompiledPolicy, host: Host, port: number): Via {
  return findRule(policy.index, host, port, null)?.rule.via ?? policy.defaultVia;
}

/** How a route reads in audit records, logs and the CLI: `direct`, or the parent names joined by `,`. */
export function viaText(via: Via): string {
  return via.length === 0 ? 'direct' : via.join(',');
}
