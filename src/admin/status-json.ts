import type { StatusFacts } from './status-page';

/**
 * The status page's facts as JSON (`/status.json`), for `tollgate status` and scripts: what an
 * operator compares across replicas after a rollout. Field names follow the audit records'
 * snake_case. Nothing here is secret beyond what the status page already shows.
 */
export interface StatusDocument {
  readonly version: string;
  readonly started_at: string;
  readonly uptime_seconds: number;
  readonly ready: boolean;
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly policy: { readonly version: string; readonly rules: number; readonly last_reload: { readonly ok: boolean; readonly at: string; readonly trigger: string } };
  readonly open_connections: number;
  readonly listeners: readonly { readonly name: string; readonly address: string }[];
  readonly ca: { readonly fingerprint256: string; readonly not_after: string };
}

export function statusDocument(facts: StatusFacts, now = new Date()): StatusDocument {
  return {
    version: facts.version,
    started_at: facts.startedAt.toISOString(),
    uptime_seconds: Math.max(0, Math.round((now.getTime() - facts.startedAt.getTime()) / 1000)),
    ready: facts.readiness.ready,
    reasons: facts.readiness.reasons,
    warnings: facts.readiness.warnings,
    policy: { version: facts.policyVersion, rules: facts.rules, last_reload: { ok: facts.lastReload.ok, at: facts.lastReload.at.toISOString(), trigger: facts.lastReload.trigger } },
    open_connections: facts.openConnections,
    listeners: facts.listeners,
    ca: { fingerprint256: facts.caFingerprint, not_after: facts.caNotAfter.toISOString() },
  };
}
