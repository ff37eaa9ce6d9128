import { publish } from '../observability/events';
import { GatewayMetrics } from './metrics';

async function value(metrics: GatewayMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return undefined;
  const data = await metric.get();
  return data.values.find((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))?.value;
}

describe('GatewayMetrics from lifecycle events', () => {
  let metrics: GatewayMetrics;
  const reload = { ok: true, at: new Date(0) };

  beforeEach(() => {
    metrics = new GatewayMetrics({ leafCacheSize: () => 7, policyVersion: () => 'v1', lastReload: () => reload, openConnections: () => 3, caNotAfter: () => new Date('2030-01-02T03:04:05Z') });
  });
  afterEach(() => metrics.close());

  test('events other parts of the gateway publish become counters and histograms', async () => {
    publish('tollgate:limit:breached', { limit: 'header_timeout', frontend: 'explicit-http' });
    publish('tollgate:auth:failed', { frontend: 'socks', reason: 'bad-password' });
    publish('tollgate:dlp:matched', { detector: 'credit-card', action: 'log' });
    const request = { action: 'inspect', decisionCode: 'rule', rule: 'web', httpRule: null };
    publish('tollgate:request:completed', { scheme: 'https', status: 200, durationMs: 12, cache: 'hit', ...request });
    publish('tollgate:request:completed', { scheme: 'https', status: 200, durationMs: 30, cache: 'miss', ...request });
    publish('tollgate:cert:minted', { durationMs: 1.4, cacheSize: 1 });
    publish('tollgate:policy:reloaded', { ok: false, version: 'v1' });
    expect(await value(metrics, 'tollgate_limit_breaches_total', { limit: 'header_timeout', frontend: 'explicit-http' })).toBe(1);
    expect(await value(metrics, 'tollgate_auth_failures_total', { frontend: 'socks', reason: 'bad-password' })).toBe(1);
    expect(await value(metrics, 'tollgate_dlp_matches_total', { detector: 'credit-card', action: 'log' })).toBe(1);
    expect(await value(metrics, 'tollgate_http_cache_total', { result: 'hit' })).toBe(1);
    expect(await value(metrics, 'tollgate_http_cache_total', { result: 'miss' })).toBe(1);
    expect(await value(metrics, 'tollgate_certificates_minted_total')).toBe(1);
    expect(await value(metrics, 'tollgate_policy_reloads_total', { result: 'failed' })).toBe(1);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^tollgate_request_duration_seconds_count\{scheme="https",status_class="2xx"\} 2$/m);
    expect(text).toMatch(/^tollgate_leaf_cache_entries 7$/m);
    expect(text).toMatch(/^tollgate_open_client_connections 3$/m);
    expect(text).toMatch(/^tollgate_policy_info\{version="v1"\} 1$/m);
  });

  test('active tunnels: opened minus closed; plain HTTP flows and refusals before a tunnel do not count', async () => {
    publish('tollgate:tunnel:opened', { frontend: 'explicit-connect' });
    publish('tollgate:tunnel:opened', { frontend: 'socks' });
    publish('tollgate:flow:decided', { frontend: 'explicit-http', action: 'inspect', code: 'rule', rule: 'web' });
    expect(await value(metrics, 'tollgate_active_tunnels')).toBe(2);
    publish('tollgate:flow:closed', { frontend: 'explicit-connect', action: 'none', close: 'refused', bytesFromClient: 0, bytesToClient: 0, durationMs: 1 });
    expect(await value(metrics, 'tollgate_active_tunnels')).toBe(2);
    publish('tollgate:tunnel:closed', { frontend: 'explicit-connect' });
    publish('tollgate:flow:closed', { frontend: 'explicit-connect', action: 'splice', close: 'client-closed', bytesFromClient: 100, bytesToClient: 2000, durationMs: 50 });
    expect(await value(metrics, 'tollgate_active_tunnels')).toBe(1);
    expect(await value(metrics, 'tollgate_flow_bytes_total', { frontend: 'explicit-connect', direction: 'to_client' })).toBe(2000);
  });

  test('per-rule decisions: destination rules, HTTP rules and DLP, labelled by rule id only', async () => {
    publish('tollgate:flow:decided', { frontend: 'explicit-connect', action: 'deny', code: 'rule', rule: 'no-paste' });
    publish('tollgate:flow:decided', { frontend: 'socks', action: 'deny', code: 'default', rule: null });
    const request = { scheme: 'https' as const, status: 403, durationMs: 1, cache: null };
    publish('tollgate:request:completed', { ...request, action: 'deny', decisionCode: 'http_rule', rule: 'storage', httpRule: 'no-admin' });
    publish('tollgate:request:completed', { ...request, status: 200, action: 'inspect', decisionCode: 'rule', rule: 'storage', httpRule: 'public-downloads' });
    publish('tollgate:request:completed', { ...request, action: 'deny', decisionCode: 'dlp', rule: 'storage', httpRule: null });
    publish('tollgate:request:completed', { ...request, status: 200, action: 'inspect', decisionCode: 'rule', rule: 'storage', httpRule: null });
    expect(await value(metrics, 'tollgate_rule_decisions_total', { rule: 'no-paste', action: 'deny' })).toBe(1);
    expect(await value(metrics, 'tollgate_rule_decisions_total', { rule: 'default_action', action: 'deny' })).toBe(1);
    expect(await value(metrics, 'tollgate_http_rule_decisions_total', { rule: 'no-admin', action: 'deny' })).toBe(1);
    expect(await value(metrics, 'tollgate_http_rule_decisions_total', { rule: 'public-downloads', action: 'allow' })).toBe(1);
    expect(await value(metrics, 'tollgate_http_rule_decisions_total', { rule: 'storage/dlp', action: 'deny' })).toBe(1);
    const text = await metrics.registry.metrics();
    expect(text.match(/^tollgate_http_rule_decisions_total\{/gm)).toHaveLength(3);
  });

  test('CA expiry, audit write failures and build info', async () => {
    publish('tollgate:audit:write-failed', { records: 12 });
    expect(await value(metrics, 'tollgate_audit_write_failures_total')).toBe(1);
    expect(await value(metrics, 'tollgate_ca_not_after_timestamp_seconds')).toBe(Date.parse('2030-01-02T03:04:05Z') / 1000);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(new RegExp(`^tollgate_build_info\\{version="\\d+\\.\\d+\\.\\d+",node="${process.version.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  });

  test('after close() events are no longer counted', async () => {
    metrics.close();
    publish('tollgate:auth:failed', { frontend: 'socks', reason: 'x' });
    expect(await value(metrics, 'tollgate_auth_failures_total', { frontend: 'socks', reason: 'x' })).toBeUndefined();
  });
});
