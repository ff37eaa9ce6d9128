import { escapeHtml, htmlPage } from './html';
import type { Readiness } from './readiness';

export interface StatusFacts {
  readonly version: string;
  readonly readiness: Readiness;
  readonly startedAt: Date;
  readonly listeners: readonly { readonly name: string; readonly address: string }[];
  readonly policyVersion: string;
  readonly rules: number;
  readonly lastReload: { readonly ok: boolean; readonly at: Date; readonly trigger: string; readonly problems: readonly string[] };
  readonly caFingerprint: string;
  readonly caNotAfter: Date;
  readonly leafCacheSize: number;
  readonly openConnections: number;
}

function row(name: string, value: string): string {
  return `<tr><th>${escapeHtml(name)}</th><td>${value}</td></tr>`;
}

export function statusPage(facts: StatusFacts, now = new Date()): string {
  const notReady = `<span class="bad">not ready</span>: ${escapeHtml(facts.readiness.reasons.join('; '))}`;
  const warnings = facts.readiness.warnings.map((w) => `<br><span class="bad">warning</span>: ${escapeHtml(w)}`).join('');
  const ready = `${facts.readiness.ready ? '<span class="ok">ready</span>' : notReady}${warnings}`;
  const reload = facts.lastReload.ok
    ? `<span class="ok">ok</span> (${escapeHtml(facts.lastReload.trigger)}, ${escapeHtml(facts.lastReload.at.toISOString())})`
    : `<span class="bad">failed</span> (${escapeHtml(facts.lastReload.trigger)}, ${escapeHtml(facts.lastReload.at.toISOString())}; the previous policy stays in force): ${escapeHtml(facts.lastReload.problems.join('; '))}`;
  const body = `<h1>tollgate</h1>
<table>
${row('Status', ready)}
${row('Version', escapeHtml(facts.version))}
${row('Up since', `${escapeHtml(facts.startedAt.toISOString())} (${Math.round((now.getTime() - facts.startedAt.getTime()) / 1000)} s)`)}
${row('Listeners', facts.listeners.map((l) => `${escapeHtml(l.name)} <code>${escapeHtml(l.address)}</code>`).join('<br>'))}
${row('Policy', `version <code>${escapeHtml(facts.policyVersion)}</code>, ${facts.rules} rules`)}
${row('Last reload', reload)}
${row('CA', `<code>${escapeHtml(facts.caFingerprint)}</code>, valid until ${escapeHtml(facts.caNotAfter.toISOString())}`)}
${row('Cached certificates', String(facts.leafCacheSize))}
${row('Open client connections', String(facts.openConnections))}
</table>
<h2>Endpoints</h2>
<ul>
<li><a href="/healthz">/healthz</a> process up &middot; <a href="/readyz">/readyz</a> ready for traffic</li>
<li><a href="/flows">/flows</a> recent flows and requests, live (from the addresses in flow_view.allow)</li>
<li><a href="/metrics">/metrics</a> Prometheus metrics &middot; <a href="/status.json">/status.json</a> this page as JSON (<code>tollgate status</code>)</li>
<li><a href="/install">/install</a> trust the CA on clients &middot; <a href="/ca.pem">/ca.pem</a> &middot; <a href="/ca.der">/ca.der</a></li>
<li><a href="/proxy.pac">/proxy.pac</a> proxy auto-configuration</li>
</ul>`;
  return htmlPage('tollgate status', body);
}
