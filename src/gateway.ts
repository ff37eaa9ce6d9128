import type { AddressInfo, Server } from 'node:net';
import path from 'node:path';
import { createAdminServer } from './admin/admin-server';
import { FlowView } from './admin/flow-view/flow-routes';
import { GatewayMetrics } from './admin/metrics';
import { checkReadiness, type Readiness } from './admin/readiness';
import type { ReopenResult } from './audit/sink';
import type { SyslogAuditSink } from './audit/syslog-sink';
import type { GatewayConfig } from './config/schema';
import { Resolver } from './egress/resolve';
import { createExplicitServer } from './frontends/explicit';
import { LISTENER_CONFIG_KEYS, type ListenerName, Listeners } from './frontends/listeners';
import { createSocksServer } from './frontends/socks';
import { createTransparentHttpServer } from './frontends/transparent-http';
import { createTransparentTlsServer } from './frontends/transparent-tls';
import { ReverseProxy } from './frontends/reverse';
import { loadConfig } from './config/load-config';
import type { HttpCache } from './http/cache/http-cache';
import type { Authenticator } from './identity/principal';
import type { Logger } from './logging/logger';
import type { ReloadStatus } from './policy/policy-store';
import type { CompiledPolicy } from './policy/types';
import { watchForChanges } from './policy/watch';
import type { PinningMonitor } from './terminals/pinning-monitor';
import { bracketedAddress } from './protocol/address-text';
import { BUILD } from './observability/build-info';
import { buildServices, type GatewayOptions, type Services } from './services';

export type { ListenerName } from './frontends/listeners';
export type { GatewayOptions } from './services';

/** Leaf keys are replaced one at a time, so no key signs leaves for more than a few days. */
const KEY_ROTATION_MS = 24 * 3_600_000;

/**
 * After the grace period, how long the cut flows get to close and write their records before
 * the audit sink is closed (README "Lifecycle"); they usually take a few milliseconds.
 */
const FLOW_CLOSE_BOUND_MS = 1_000;

function syslogFacts(sink: SyslogAuditSink): { connected: boolean; since: Date; queued: number; spilled: number } {
  const stats = sink.syslogStats;
  return { connected: stats.connected, since: stats.since, queued: stats.queuedRecords, spilled: Object.values(stats.spilled).reduce((a, b) => a + b, 0) };
}

/**
 * The composition root: builds the shared services once, creates the front-ends on them, binds
 * the listeners, and starts and stops the whole. No pipeline logic lives here.
 */
export class Gateway {
  readonly startedAt = new Date();
  private readonly timers: NodeJS.Timeout[] = [];
  private metrics: GatewayMetrics | null = null;
  private stopping: Promise<void> | null = null;
  private draining = false;
  private stopWatching: () => void = () => undefined;

  private constructor(
    readonly config: GatewayConfig,
    private readonly logger: Logger,
    private readonly listeners: Listeners,
    private readonly services: Services,
  ) {}

  static async start(config: GatewayConfig, options: GatewayOptions): Promise<Gateway> {
    const { limits, listen } = config;
    const listeners = new Listeners(
      { maxConnections: limits.maxConnections, maxConnectionsPerClient: limits.maxConnectionsPerClient, proxyProtocol: listen.proxyProtocol, proxyHeaderTimeoutMs: limits.proxyHeaderTimeoutMs },
      options.logger,
    );
    const services = await buildServices(config, options, listeners);
    listeners.recordOverloads(services.flows);
    const gateway = new Gateway(config, options.logger, listeners, services);
    const rotation = setInterval(() => void services.rotateKeys(), KEY_ROTATION_MS);
    rotation.unref();
    gateway.timers.push(rotation);
    try {
      await gateway.listen(options.authenticator ?? services.users);
    } catch (err) {
      await gateway.stop(0);
      throw err;
    }
    const policy = services.policies.current;
    options.logger.info({ policy_version: policy.version, rules: policy.rules.length, default_action: policy.defaultAction }, 'policy loaded');
    const users = services.users;
    gateway.stopWatching = watchForChanges(
      [
        { dir: config.policiesDir, names: null },
        { dir: path.dirname(config.sourcePath), names: new Set([path.basename(config.sourcePath)]) },
        ...(users ? [{ dir: path.dirname(users.file), names: new Set([path.basename(users.file)]) }] : []),
      ],
      (changed) => gateway.reload(`file change: ${changed}`),
      options.logger,
    );
    return gateway;
  }

  get policy(): CompiledPolicy {
    return this.services.policies.current;
  }
  get lastReload(): ReloadStatus {
    return this.services.policies.lastReload;
  }
  get pinning(): PinningMonitor {
    return this.services.pinning;
  }
  get httpCache(): HttpCache {
    return this.services.httpCache;
  }
  get connections(): Listeners['connections'] {
    return this.listeners.connections;
  }

  /** Bound address of a listener (port 0 in the configuration becomes the real port here). */
  address(name: ListenerName): AddressInfo | null {
    return this.listeners.address(name);
  }

  /** Resolves once every audit record so far has been handed to the OS. */
  flushAudit(): Promise<void> {
    return this.services.audit.flush();
  }

  /**
   * Log rotation (SIGHUP, SIGUSR1): opens `audit.file` anew, so that after a rename new records
   * go to a new file. Logged either way: an operator rotating files needs to see that it worked.
   */
  reopenAudit(trigger: string): ReopenResult {
    const result = this.services.audit.reopen();
    if (result.reopened) this.logger.info({ trigger, audit_file: result.file, rotated: result.rotated }, result.rotated ? 'audit file reopened: new records go to a new file' : 'audit file reopened');
    else if (this.config.audit.file === 'stdout') this.logger.debug({ trigger }, result.reason);
    else this.logger.error({ trigger, reason: result.reason }, 'audit file not reopened');
    return result;
  }

  /**
   * Re-reads the configuration, policy and users files (SIGHUP, or a file change). Invalid files
   * leave what is running in force; the error is logged with file and line.
   */
  reload(trigger: string): ReloadStatus {
    const status = this.services.policies.reload(trigger);
    const users = this.services.users?.reload(trigger);
    if (!users || users.ok) return status;
    // An invalid users file keeps the users in force; the reload as a whole reports the failure.
    return { ...status, ok: false, problems: [...status.problems, ...users.problems] };
  }

  /** Whether a balancer should send traffic here; reasons when not. */
  readiness(): Readiness {
    const configured = (Object.keys(LISTENER_CONFIG_KEYS) as ListenerName[]).filter((name) => this.config.listen[name] !== null);
    return checkReadiness({
      configured: configured.map((name) => LISTENER_CONFIG_KEYS[name]),
      bound: this.listeners.boundNames.map((name) => LISTENER_CONFIG_KEYS[name]),
      caNotAfter: this.services.authority.notAfter,
      policyRules: this.policy.rules.length,
      draining: this.draining,
      stateStore: this.services.state?.health() ?? null,
      auditSyslog: this.services.syslog ? syslogFacts(this.services.syslog) : null,
    });
  }

  private async listen(authenticator: Authenticator | null): Promise<void> {
    const { listen, limits, http, transparent } = this.config;
    const { entry, tunnels, flows, redactor, users } = this.services;
    const httpLimits = { maxHeaderBytes: http.maxHeaderBytes, maxHeaders: http.maxHeaders, headerTimeoutMs: limits.headerTimeoutMs, clientIdleTimeoutMs: limits.clientIdleTimeoutMs };
    const auth = users ? { store: users, realm: this.config.auth.realm } : null;
    const servers: [ListenerName, (() => Server) | null][] = [
      ['explicit', listen.explicit ? () => createExplicitServer({ ...httpLimits, auth }, { entry, tunnels, flows, redactor }, this.logger) : null],
      ['socks', listen.socks ? () => createSocksServer({ handshakeTimeoutMs: limits.socksHandshakeTimeoutMs, authenticator, ...this.services.socksCommands }, tunnels, flows) : null],
      [
        'transparentTls',
        listen.transparentTls ? () => createTransparentTlsServer({ originPort: transparent.tlsOriginPort, peekTimeoutMs: limits.peekTimeoutMs, noSni: transparent.noSni }, tunnels, flows) : null,
      ],
      ['transparentHttp', listen.transparentHttp ? () => createTransparentHttpServer(httpLimits, entry, this.logger) : null],
      ['admin', listen.admin ? () => this.createAdmin() : null],
    ];
    for (const [name, create] of servers) {
      const at = listen[name];
      if (create && at) await this.listeners.bind(name, create(), at);
    }
    // The reverse-proxy (ingress) listeners: their routes, certificates and backend dialling
    // (frontends/reverse.ts), on the same policy, cache and audit as everything else.
    if (listen.reverse || listen.reverseHttp) {
      const { upstream } = this.config;
      const reverse = ReverseProxy.create({
        logger: this.logger,
        flows,
        policy: () => this.services.policies.current,
        redactor,
        cache: this.services.httpCache,
        via: http.via,
        initial: this.config.reverse,
        reread: () => loadConfig(this.config.sourcePath).reverse,
        sourcePath: this.config.sourcePath,
        upstreamCaFile: upstream.caFile,
        resolver: new Resolver({ hosts: upstream.hosts, servers: upstream.dnsServers, maxEntries: upstream.dnsCacheSize, negativeTtlMs: upstream.dnsNegativeTtlMs, maxTtlMs: upstream.dnsMaxTtlMs }),
        isOwnListener: (address, port) => this.listeners.isOwnListener(address, port),
        connectTimeoutMs: upstream.connectTimeoutMs,
        responseTimeoutMs: upstream.responseTimeoutMs,
        idleTimeoutMs: upstream.idleTimeoutMs,
        maxSocketsPerHost: upstream.maxSocketsPerHost,
        httpLimits,
        peekTimeoutMs: limits.peekTimeoutMs,
        handshakeTimeoutMs: limits.tlsHandshakeTimeoutMs,
        tlsListener: listen.reverse !== null,
      });
      try {
        if (listen.reverse) await this.listeners.bind('reverse', reverse.tlsServer(), listen.reverse);
        if (listen.reverseHttp) await this.listeners.bind('reverseHttp', reverse.httpServer(), listen.reverseHttp);
      } catch (err) {
        // A server that never listened never closes: stop its watchers here.
        reverse.close();
        throw err;
      }
    }
  }

  private createAdmin(): Server {
    const { policies, authority, leaves, state, syslog } = this.services;
    const metrics = new GatewayMetrics({
      leafCacheSize: () => leaves.size,
      policyVersion: () => policies.current.version,
      lastReload: () => policies.lastReload,
      openConnections: () => this.listeners.openConnections,
      caNotAfter: () => authority.notAfter,
      // Only what is configured is exported: a state_store_up of 0 must mean down, not absent.
      ...(state ? { stateStore: () => state.health() } : {}),
      ...(syslog ? { auditSyslog: () => syslog.syslogStats } : {}),
    });
    this.metrics = metrics;
    const recent = this.services.recentFlows;
    const logger = this.logger.child({ listener: 'admin' });
    return createAdminServer({
      logger,
      flows: recent ? new FlowView({ recent, allow: this.config.flowView.allow, logger }) : null,
      authority,
      metrics,
      pac: this.config.pac,
      readiness: () => this.readiness(),
      explicitAddress: () => this.address('explicit'),
      status: () => ({
        version: BUILD.version,
        readiness: this.readiness(),
        startedAt: this.startedAt,
        listeners: this.listeners.boundNames.map((name) => {
          const a = this.address(name)!;
          return { name: LISTENER_CONFIG_KEYS[name], address: `${bracketedAddress(a.address)}:${a.port}` };
        }),
        policyVersion: policies.current.version,
        rules: policies.current.rules.length,
        lastReload: policies.lastReload,
        caFingerprint: authority.fingerprint256,
        caNotAfter: authority.notAfter,
        leafCacheSize: leaves.size,
        openConnections: this.listeners.openConnections,
      }),
    });
  }

  /**
   * Graceful stop: stop accepting, let in-flight work finish up to `graceMs`, then cut what is
   * left, and flush every audit record before resolving.
   */
  stop(graceMs = this.config.limits.shutdownGraceMs): Promise<void> {
    this.stopping ??= this.drain(graceMs);
    return this.stopping;
  }

  private async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const timer of this.timers) clearInterval(timer);
    this.stopWatching();
    this.services.pinning.stop();
    this.services.pinning.persist();
    const { openFlows, audit } = this.services;
    let cut = 0;
    await this.listeners.drain(graceMs, () => {
      // What is still open now is cut by the shutdown: its records say so (close: shutdown).
      cut = openFlows.cutAll();
    });
    await this.listeners.closeAdmin();
    this.metrics?.close();
    this.services.closeOrigins();
    // A cut flow writes its connection record (and its in-flight request's) as its sockets
    // close, several event-loop turns after they were destroyed: wait for every one, bounded,
    // before the sink closes. A flow still open after the bound has its record written for it.
    const forced = await openFlows.settled(FLOW_CLOSE_BOUND_MS);
    if (cut > 0 || forced > 0) this.logger.info({ flows_cut: cut, flows_forced: forced }, 'flows still open at the end of limits.shutdown_grace were cut');
    if (forced > 0) this.logger.warn({ flows_forced: forced, bound_ms: FLOW_CLOSE_BOUND_MS }, 'flows did not close within the bound after being cut; their records were written with what was known');
    // Records written in the turns just past (request records after their flow's) reach the sink.
    await new Promise((resolve) => setImmediate(resolve));
    await audit.close();
    await this.services.state?.close();
    this.logger.info({ audit_records: audit.stats.written, audit_dropped: audit.stats.dropped }, 'gateway stopped');
  }
}
