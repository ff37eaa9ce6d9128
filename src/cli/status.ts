import type { StatusDocument } from '../admin/status-json';
import { fetchAdminJson } from '../backplane/admin-client';
import { UsageError } from './args';

/** What `tollgate status` learned from one replica. */
export type ReplicaStatus = { readonly url: string; readonly ok: true; readonly status: StatusDocument } | { readonly url: string; readonly ok: false; readonly error: string };

/** `--admin URL[,URL...]`: admin listeners, `http://host:port` (a path, if any, is where /status.json lives). */
export function parseAdminUrls(value: string): URL[] {
  const urls = value
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0) throw new UsageError('--admin needs at least one URL, such as http://127.0.0.1:9090');
  return urls.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UsageError(`--admin: "${text}" is not a URL (expected http://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--admin: "${text}" is not an http:// or https:// URL`);
    return url;
  });
}

function statusUrl(admin: URL): URL {
  const url = new URL(admin.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/status.json`;
  url.search = '';
  return url;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m ${seconds % 60}s` : `${seconds}s`;
}

/** The lines printed for one replica. */
export function describeReplica(replica: ReplicaStatus): string[] {
  if (!replica.ok) return [replica.url, `  unreachable    ${replica.error}`];
  const s = replica.status;
  const reload = s.policy.last_reload;
  return [
    replica.url,
    `  version        ${s.version}`,
    `  policy         ${s.policy.version} (${s.policy.rules} rules); last reload ${reload.ok ? 'ok' : 'FAILED'} at ${reload.at} (${reload.trigger})`,
    `  uptime         ${duration(s.uptime_seconds)} (since ${s.started_at})`,
    `  open flows     ${s.open_connections}`,
    `  listeners      ${s.listeners.map((l) => `${l.name} ${l.address}`).join(', ')}`,
    `  ready          ${s.ready ? 'yes' : `no: ${s.reasons.join('; ')}`}`,
    ...s.warnings.map((w) => `  warning        ${w}`),
  ];
}

/** One line comparing replicas: what differs after a rollout. */
export function compareReplicas(replicas: readonly ReplicaStatus[]): string {
  const answered = replicas.filter((r): r is Extract<ReplicaStatus, { ok: true }> => r.ok);
  const distinct = (pick: (s: StatusDocument) => string): string[] => [...new Set(answered.map((r) => pick(r.status)))];
  const versions = distinct((s) => s.version);
  const policies = distinct((s) => s.policy.version);
  const parts: string[] = [];
  parts.push(versions.length <= 1 ? `version ${versions[0] ?? '-'} everywhere` : `VERSIONS DIFFER: ${versions.join(', ')}`);
  parts.push(policies.length <= 1 ? `policy ${policies[0] ?? '-'} everywhere` : `POLICIES DIFFER: ${policies.join(', ')}`);
  const missing = replicas.length - answered.length;
  if (missing > 0) parts.push(`${missing} of ${replicas.length} unreachable`);
  return `${answered.length} of ${replicas.length} replicas answered: ${parts.join('; ')}`;
}

/**
 * `tollgate status --admin URL[,URL...]`: each replica's version, policy version, uptime, open
 * flows and listeners, then (for several) whether they agree. Exit status 1 when a replica did
 * not answer, is not ready, or the replicas disagree on version or policy: a rollout check.
 */
export async function runStatus(admins: readonly URL[], out: (line: string) => void): Promise<number> {
  const replicas = await Promise.all(
    admins.map(async (admin): Promise<ReplicaStatus> => {
      try {
        return { url: admin.href, ok: true, status: (await fetchAdminJson(statusUrl(admin))) as StatusDocument };
      } catch (err) {
        return { url: admin.href, ok: false, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
      }
    }),
  );
  for (const replica of replicas) for (const line of describeReplica(replica)) out(line);
  const summary = compareReplicas(replicas);
  if (replicas.length > 1) out(summary);
  const healthy = replicas.every((r) => r.ok && r.status.ready);
  return healthy && !/DIFFER/.test(summary) ? 0 : 1;
}
