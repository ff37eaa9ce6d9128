import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BUILD } from '../observability/build-info';
import { subscribe } from '../observability/events';

/** Facts read at scrape time rather than counted from events. */
export interface MetricSources {
  readonly leafCacheSize: () => number;
  readonly policyVersion: () => string;
  readonly lastReload: () => { readonly ok: boolean; readonly at: Date };
  readonly openConnections: () => number;
  /** The gateway CA's expiry; absent in embedders without a CA. */
  readonly caNotAfter?: () => Date;
  /** The fleet's shared state store (state.redis); absent or null when not configured. */
  readonly stateStore?: () => { readonly up: boolean; readonly failedCommands: number } | null;
  /** The syslog audit sink (audit.syslog); absent or null when not configured. */
  readonly auditSyslog?: () => {
    readonly connected: boolean;
    readonly sent: number;
    readonly resent: number;
    readonly dropped: number;
    readonly spilled: Readonly<Record<string, number>>;
    readonly queuedRecords: number;
    readonly queuedBytes: number;
  } | null;
}

/** The label of decisions no rule made. */
const DEFAULT_RULE = 'default_action';

/** Front-ends whose flows are HTTP connections decided per request, not tunnels. */

/**
 * The gateway's Prometheus metrics, built only from lifecycle events (observability/events.ts)
 * and a few gauges read at scrape time. Each gateway has its own registry so two gateways in
 * one process (tests) do not collide. Events are process-wide: a registry counts every gateway's
 * events in the process, which in production is one.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly unsubscribers: (() => void)[] = [];
  private activeTunnels = 0;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'tollgate_process_' });

    const decisions = new Counter({
      name: 'tollgate_flow_decisions_total',
      help: 'Policy decisions by front-end and action (tunnels: one per flow; plain HTTP: one per request)',
      labelNames: ['frontend', 'action', 'code'],
      registers,
    });
    const closed = new Counter({ name: 'tollgate_flows_closed_total', help: 'Flows ended, by front-end, action and how they closed', labelNames: ['frontend', 'action', 'close'], registers });
    const bytes = new Counter({ name: 'tollgate_flow_bytes_total', help: 'Bytes relayed for closed flows, by direction', labelNames: ['frontend', 'direction'], registers });
    const flowDuration = new Histogram({
      name: 'tollgate_flow_duration_seconds',
      help: 'Flow lifetime from accept to close',
      labelNames: ['frontend'],
      buckets: [0.01, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'tollgate_active_tunnels',
      help: 'Tunnels (CONNECT, SOCKS, transparent TLS) accepted and not yet closed',
      registers,
      collect() {
        this.set(self.activeTunnels);
      },
    });
    new Gauge({
      name: 'tollgate_open_client_connections',
      help: 'Client connections open on the proxy listeners',
      registers,
      collect() {
        this.set(sources.openConnections());
      },
    });
    const requestDuration = new Histogram({
      name: 'tollgate_request_duration_seconds',
      help: 'HTTP requests handled by the gateway (plain or inspected), from request to response end',
      labelNames: ['scheme', 'status_class'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const cache = new Counter({ name: 'tollgate_http_cache_total', help: 'HTTP cache lookups by result (hit, miss, ...)', labelNames: ['result'], registers });
    const minted = new Counter({ name: 'tollgate_certificates_minted_total', help: 'Leaf certificates minted', registers });
    const mintDuration = new Histogram({
      name: 'tollgate_certificate_mint_duration_seconds',
      help: 'Time to mint one leaf certificate and build its TLS context',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    new Gauge({
      name: 'tollgate_leaf_cache_entries',
      help: 'Minted certificates currently cached',
      registers,
      collect() {
        this.set(sources.leafCacheSize());
      },
    });
    const reloads = new Counter({ name: 'tollgate_policy_reloads_total', help: 'Policy and configuration reload attempts by result', labelNames: ['result'], registers });
    new Gauge({
      name: 'tollgate_policy_last_reload_ok',
      help: '1 when the last policy reload succeeded (a failed reload keeps the previous policy in force)',
      registers,
      collect() {
        this.set(sources.lastReload().ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tollgate_policy_last_reload_timestamp_seconds',
      help: 'Time of the last policy load or reload attempt',
      registers,
      collect() {
        this.set(sources.lastReload().at.getTime() / 1000);
      },
    });
    new Gauge({
      name: 'tollgate_policy_info',
      help: 'The policy version in force (label), value 1',
      labelNames: ['version'],
      registers,
      collect() {
        // Reset at each scrape so only the version in force is exported.
        this.reset();
        this.set({ version: sources.policyVersion() }, 1);
      },
    });
    if (sources.stateStore) this.addStateStoreMetrics(sources.stateStore, registers);
    if (sources.auditSyslog) this.addSyslogMetrics(sources.auditSyslog, registers);
    const breaches = new Counter({ name: 'tollgate_limit_breaches_total', help: 'Configured limits breached, by config key and front-end', labelNames: ['limit', 'frontend'], registers });
    const dlpMatches = new Counter({
      name: 'tollgate_dlp_matches_total',
      help: 'DLP findings in inspected requests, by detector and action (deny, log)',
      labelNames: ['detector', 'action'],
      registers,
    });
    const authFailures = new Counter({ name: 'tollgate_auth_failures_total', help: 'Failed proxy or SOCKS authentications', labelNames: ['frontend', 'reason'], registers });
    // Rule ids only, never destination names: the label values are bounded by the policy.
    const ruleDecisions = new Counter({
      name: 'tollgate_rule_decisions_total',
      help: 'Destination policy decisions by deciding rule (default_action when none matched) and action; tunnels: one per flow, plain HTTP: one per request',
      labelNames: ['rule', 'action'],
      registers,
    });
    const httpRuleDecisions = new Counter({
      name: 'tollgate_http_rule_decisions_total',
      help: 'Requests decided by an HTTP rule (allow, deny) or denied by upload inspection (rule "<destination rule>/dlp")',
      labelNames: ['rule', 'action'],
      registers,
    });
    const auditFailures = new Counter({
      name: 'tollgate_audit_write_failures_total',
      help: 'Failed writes to the audit sink (each loses the records of one batch; the log names how many)',
      registers,
    });
    // Parent names come from upstream.parents, never destinations: the label values are bounded.
    const parentConnections = new Counter({
      name: 'tollgate_parent_connections_total',
      help: 'Connection attempts through parent proxies (upstream.parents) by parent and outcome (connected, refused, unreachable)',
      labelNames: ['parent', 'outcome'],
      registers,
    });
    this.unsubscribers.push(subscribe('tollgate:egress:parent', (m) => parentConnections.inc({ parent: m.parent, outcome: m.outcome })));
    new Gauge({
      name: 'tollgate_build_info',
      help: 'The running build: tollgate version and Node.js version (value 1)',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: BUILD.version, node: BUILD.node }, 1);
    const caNotAfter = sources.caNotAfter;
    if (caNotAfter) {
      new Gauge({
        name: 'tollgate_ca_not_after_timestamp_seconds',
        help: 'When the gateway CA certificate expires (Unix time); minted certificates never outlive it',
        registers,
        collect() {
          this.set(caNotAfter().getTime() / 1000);
        },
      });
    }

    this.unsubscribers.push(
      subscribe('tollgate:flow:decided', (m) => {
        decisions.inc({ frontend: m.frontend, action: m.action, code: m.code });
        ruleDecisions.inc({ rule: m.rule ?? DEFAULT_RULE, action: m.action });
      }),
      subscribe('tollgate:tunnel:opened', () => {
        this.activeTunnels++;
      }),
      subscribe('tollgate:tunnel:closed', () => {
        this.activeTunnels = Math.max(0, this.activeTunnels - 1);
      }),
      subscribe('tollgate:flow:closed', (m) => {
        closed.inc({ frontend: m.frontend, action: m.action, close: m.close });
        bytes.inc({ frontend: m.frontend, direction: 'from_client' }, m.bytesFromClient);
        bytes.inc({ frontend: m.frontend, direction: 'to_client' }, m.bytesToClient);
        flowDuration.observe({ frontend: m.frontend }, m.durationMs / 1000);
      }),
      subscribe('tollgate:request:completed', (m) => {
        requestDuration.observe({ scheme: m.scheme, status_class: m.status > 0 ? `${Math.floor(m.status / 100)}xx` : 'none' }, m.durationMs / 1000);
        if (m.cache !== null) cache.inc({ result: m.cache });
        if (m.httpRule !== null) httpRuleDecisions.inc({ rule: m.httpRule, action: m.decisionCode === 'http_rule' ? 'deny' : 'allow' });
        if (m.decisionCode === 'dlp') httpRuleDecisions.inc({ rule: `${m.rule ?? DEFAULT_RULE}/dlp`, action: 'deny' });
      }),
      subscribe('tollgate:audit:write-failed', () => auditFailures.inc()),
      subscribe('tollgate:cert:minted', (m) => {
        minted.inc();
        mintDuration.observe(m.durationMs / 1000);
      }),
      subscribe('tollgate:policy:reloaded', (m) => reloads.inc({ result: m.ok ? 'ok' : 'failed' })),
      subscribe('tollgate:limit:breached', (m) => breaches.inc({ limit: m.limit, frontend: m.frontend })),
      subscribe('tollgate:auth:failed', (m) => authFailures.inc({ frontend: m.frontend, reason: m.reason })),
      subscribe('tollgate:dlp:matched', (m) => dlpMatches.inc({ detector: m.detector, action: m.action })),
    );

    // SOCKS5 UDP ASSOCIATE and BIND: label values are fixed sets (frontends/socks-udp.ts, socks-bind.ts).
    const udpDatagrams = new Counter({ name: 'tollgate_socks_udp_datagrams_total', help: 'SOCKS5 UDP datagrams relayed, by direction (to_origin, to_client)', labelNames: ['direction'], registers });
    const udpBytes = new Counter({ name: 'tollgate_socks_udp_bytes_total', help: 'SOCKS5 UDP payload bytes relayed, by direction', labelNames: ['direction'], registers });
    const udpDropped = new Counter({ name: 'tollgate_socks_udp_dropped_total', help: 'SOCKS5 UDP datagrams dropped, by reason', labelNames: ['reason'], registers });
    const udpClosed = new Counter({ name: 'tollgate_socks_udp_associations_closed_total', help: 'SOCKS5 UDP associations ended, by how', labelNames: ['close'], registers });
    const binds = new Counter({
      name: 'tollgate_socks_bind_total',
      help: 'SOCKS5 BIND outcomes: connected, timeout, refused, wrong-peer (a connection turned away), client-closed',
      labelNames: ['result'],
      registers,
    });
    this.unsubscribers.push(
      subscribe('tollgate:socks:udp-relayed', (m) => {
        const direction = m.direction === 'to-origin' ? 'to_origin' : 'to_client';
        udpDatagrams.inc({ direction });
        udpBytes.inc({ direction }, m.bytes);
      }),
      subscribe('tollgate:socks:udp-dropped', (m) => udpDropped.inc({ reason: m.reason })),
      subscribe('tollgate:socks:udp-closed', (m) => udpClosed.inc({ close: m.close })),
      subscribe('tollgate:socks:bind', (m) => binds.inc({ result: m.result })),
    );
  }

  private addStateStoreMetrics(read: NonNullable<MetricSources['stateStore']>, registers: Registry[]): void {
    new Gauge({
      name: 'tollgate_state_store_up',
      help: '1 while the shared state store (state.redis) is reachable; 0: authentication fails closed, pinning detection is report-only',
      registers,
      collect() {
        this.set(read()?.up ? 1 : 0);
      },
    });
    new Counter({
      name: 'tollgate_state_store_failed_commands_total',
      help: 'State store commands that failed (unreachable, timed out, error)',
      registers,
      collect() {
        this.reset();
        this.inc(read()?.failedCommands ?? 0);
      },
    });
  }

  private addSyslogMetrics(read: NonNullable<MetricSources['auditSyslog']>, registers: Registry[]): void {
    new Gauge({
      name: 'tollgate_audit_syslog_connected',
      help: '1 while the syslog collector (audit.syslog) is connected',
      registers,
      collect() {
        this.set(read()?.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tollgate_audit_syslog_queued_records',
      help: 'Audit records waiting for the syslog collector (bounded by audit.syslog.buffer_size)',
      registers,
      collect() {
        this.set(read()?.queuedRecords ?? 0);
      },
    });
    new Gauge({
      name: 'tollgate_audit_syslog_queued_bytes',
      help: 'Bytes of audit messages waiting for the syslog collector',
      registers,
      collect() {
        this.set(read()?.queuedBytes ?? 0);
      },
    });
    new Counter({
      name: 'tollgate_audit_syslog_records_total',
      help: 'Audit records by what became of them: sent, resent (after a connection failed), spilled (to audit.file), dropped (after close)',
      labelNames: ['outcome'],
      registers,
      collect() {
        const stats = read();
        this.reset();
        if (!stats) return;
        const spilled = Object.values(stats.spilled).reduce((a, b) => a + b, 0);
        for (const [outcome, value] of Object.entries({ sent: stats.sent, resent: stats.resent, spilled, dropped: stats.dropped })) this.inc({ outcome }, value);
      },
    });
    new Counter({
      name: 'tollgate_audit_syslog_spilled_total',
      help: 'Audit records written to audit.file instead of the syslog collector, by reason (overflow, too_large, send_failed, shutdown)',
      labelNames: ['reason'],
      registers,
      collect() {
        const stats = read();
        this.reset();
        if (!stats) return;
        for (const [reason, value] of Object.entries(stats.spilled)) this.inc({ reason }, value);
      },
    });
  }

  /** Stops counting (the registry keeps its last values). */
  close(): void {
    for (const unsubscribe of this.unsubscribers.splice(0)) unsubscribe();
  }
}
