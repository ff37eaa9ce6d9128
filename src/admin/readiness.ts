export interface Readiness {
  readonly ready: boolean;
  /** Why not, one reason per failed check; empty when ready. */
  readonly reasons: readonly string[];
  /** What an operator should know although the gateway stays ready (a degraded dependency). */
  readonly warnings: readonly string[];
}

export interface ReadinessFacts {
  /** Listeners the configuration enables, by config key. */
  readonly configured: readonly string[];
  /** Listeners bound now. */
  readonly bound: readonly string[];
  /** The CA's validity end; null when no CA is loaded. */
  readonly caNotAfter: Date | null;
  /** Rules in the policy in force; null when none is in force. */
  readonly policyRules: number | null;
  readonly draining: boolean;
  /** The fleet's shared state store (state.redis), when configured. */
  readonly stateStore?: { readonly up: boolean; readonly since: Date } | null;
  /** The syslog collector (audit.syslog), when configured. */
  readonly auditSyslog?: { readonly connected: boolean; readonly since: Date; readonly queued: number; readonly spilled: number } | null;
}

/**
 * Whether a balancer should send traffic here. A failed policy *reload* does not make the
 * gateway unready: the previous, valid policy stays in force, and failing every replica's
 * readiness because of one bad file on a shared volume would turn a typo into an outage. It is
 * reported on the status page and in tollgate_policy_last_reload_ok instead. The same holds for
 * the fleet's shared dependencies (the state store, the syslog collector): every replica loses
 * them at once, so they are warnings here (and metrics), never reasons to leave the rotation.
 */
export function checkReadiness(facts: ReadinessFacts, now = new Date()): Readiness {
  const reasons: string[] = [];
  if (facts.draining) reasons.push('shutting down: draining in-flight work');
  const missing = facts.configured.filter((name) => !facts.bound.includes(name));
  if (missing.length > 0) reasons.push(`listeners not bound: ${missing.join(', ')}`);
  if (facts.caNotAfter === null) reasons.push('CA not loaded');
  else if (facts.caNotAfter.getTime() <= now.getTime()) reasons.push(`CA expired at ${facts.caNotAfter.toISOString()}`);
  if (facts.policyRules === null) reasons.push('no valid policy in force');
  const warnings: string[] = [];
  if (facts.stateStore && !facts.stateStore.up) {
    warnings.push(
      `state store (state.redis) unreachable since ${facts.stateStore.since.toISOString()}: proxy authentication refuses to check credentials (fail closed); pinning detection is report-only`,
    );
  }
  const syslog = facts.auditSyslog;
  if (syslog && !syslog.connected) {
    warnings.push(`syslog collector (audit.syslog) unreachable since ${syslog.since.toISOString()}: ${syslog.queued} records waiting in the buffer, ${syslog.spilled} spilled to audit.file so far`);
  }
  return { ready: reasons.length === 0, reasons, warnings };
}
