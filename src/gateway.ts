import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Server } from 'node:net';
import path from 'node:path';
import { createAdminServer } from './admin/admin-server';
import { FlowView } from './admin/flow-view/flow-routes';
import { RecentFlows, teeRecords } from './admin/flow-view/recent-flows';
import { GatewayMetrics } from './admin/metrics';
import { checkReadiness, type Readiness } from './admin/readiness';
import { pinningRecord } from './audit/records';
import { Redactor } from './audit/redact';
import type { AuditSink, ReopenResult } from './audit/sink';
import type { SyslogAuditSink } from './audit/syslog-sink';
import type { RedisStateStore } from './backplane/redis-state';
import { loadGatewayAuthority, loadUsers, policyCompiler } from './config/runtime';
import { connectStateStore, openAudit, pinningLedger } from './config/shared-services';
import type { GatewayConfig } from './config/schema';
import { AddressGuard } from './egress/address-guard';
import { OriginWarmup } from './egress/warmup';
import { Egress } from './egress/egress';
import { H1Pools } from './egress/h1-pools';
import { H2Sessions } from './egress/h2-sessions';
import { createOriginContext } from './egress/origin-tls';
import { Resolver } from './egress/resolve';
import { loadParents } from './egress/parents';
import { routeFor } from './policy/decide';
import type { FlowServices } from './flow/flow';
import { createExplicitServer } from './frontends/explicit';
import { LISTENER_CONFIG_KEYS, type ListenerName, Listeners } from './frontends/listeners';
import { createSocksServer } from './frontends/socks';
import type { SocksBindOptions } from './frontends/socks-bind';
import type { SocksUdpOptions } from './frontends/socks-udp';
import { createTransparentHttpServer } from './frontends/transparent-http';
import { createTransparentTlsServer } from './frontends/transparent-tls';
import { ReverseProxy } from './frontends/reverse';
import { loadConfig } from './config/load-config';
import { HttpCache } from './http/cache/http-cache';
import { HttpEntry } from './http/entry';
import { HttpForwarder } from './http/forward';
import { Http1OriginLeg } from './http/origin-h1';
import { Http2OriginLeg } from './http/origin-h2';
import type { UserStore } from './identity/user-store';
import type { Authenticator } from './identity/principal';
import type { Logger } from './logging/logger';
import { withProgress } from './logging/progress';
import { PolicyStore, type ReloadStatus } from './policy/policy-store';
import type { CompiledPolicy } from './policy/types';
import { watchForChanges } from './policy/watch';
import { OriginReads } from './relay/origin-reads';
import { Relay } from './relay/relay';
import { TlsInspector } from './terminals/inspect';
import { CleartextHttpTerminal } from './terminals/cleartext';
import { DecryptedStreams } from './terminals/decrypted-stream';
import { watchFirstOriginBytes } from './relay/first-origin-bytes';
import { PinningMonitor } from './terminals/pinning-monitor';
import type { CertificateAuthority } from './tls/ca';
import { LeafKeyPool } from './tls/key-pool';
import { LeafCache } from './tls/leaf-cache';
import { peekClientBytes } from './tunnel/peek';
import type { TunnelDeps } from './tunnel/tunnel';
import { bracketedAddress } from './protocol/address-text';
import { BUILD } from './observability/build-info';
import { publish } from './observability/events';

export type { ListenerName } from './frontends/listeners';

export interface GatewayOptions {
  readonly logger: Logger;
  /** Nameservers for the gateway's resolver instead of the system's. */
  readonly dnsServers?: readonly string[];
  /**
   * Credentials for SOCKS5 instead of the configured users file (embedders, tests). With users,
   * SOCKS5 requires username/password and SOCKS4 is refused.
   */
  readonly authenticator?: Authenticator;
}

/** Leaf keys are replaced one at a time, so no key signs leaves for more than a few days. */
const KEY_ROTATION_MS = 24 * 3_600_000;

/** How long an origin's ALPN answer (h2 or not) is reused before it is probed again. */
const ORIGIN_ALPN_TTL_MS = 10 * 60_000;

/** The long-lived services the pipeline shares, built once from the configuration. */
interface Services {
  readonly audit: AuditSink;
  /** Recent records for the flow view; null without an admin listener or with flow_view.enabled false. */
  readonly recentFlows: RecentFlows | null;
  readonly syslog: SyslogAuditSink | null;
  readonly state: RedisStateStore | null;
  readonly policies: PolicyStore;
  readonly users: UserStore | null;
  readonly authority: CertificateAuthority;
  readonly leaves: LeafCache;
  readonly pinning: PinningMonitor;
  readonly httpCache: HttpCache;
  readonly entry: HttpEntry;
  readonly tunnels: TunnelDeps;
  readonly flows: FlowServices;
  /** SOCKS5 UDP ASSOCIATE and BIND. */
  readonly socksCommands: { readonly udp: SocksUdpOptions; readonly bind: SocksBindOptions };
  readonly redactor: Redactor;
  /** Closes the origin connection pools. */
  readonly closeOrigins: () => void;
  readonly rotateKeys: () => Promise<void>;
}

async function buildServices(config: GatewayConfig, options: GatewayOptions, listeners: Listeners): Promise<Services> {
  const { logger } = options;
  const state = await connectStateStore(config, logger);
  try {
    return await buildWithState(config, options, listeners, state);
  } catch (err) {
    // Its reconnect timers would keep a process that failed to start alive.
    await state?.close();
    throw err;
  }
}

async function buildWithState(config: GatewayConfig, options: GatewayOptions, listeners: Listeners, state: RedisStateStore | null): Promise<Services> {
  const { logger } = options;
  const users = loadUsers(config, logger, state?.failureCounter(config.auth.maxFailures, config.auth.failureWindowMs));
  const policies = new PolicyStore(policyCompiler(config, users !== null, logger), logger);
  const authority = await loadGatewayAuthority(config, logger);
  const keys = await withProgress(logger, 'generating leaf keys', LeafKeyPool.create({ keyType: config.ca.leafKeyType, caSpkiDer: authority.spkiDer, logger }));
  const leaves = new LeafCache({ authority, keys, maxEntries: config.ca.leafCacheSize, validityMs: config.ca.leafValidityMs, logger });
  const { audit, syslog } = openAudit(config, logger, (err, lost) => {
    logger.error({ err, lost_records: lost }, 'audit write failed');
    publish('tollgate:audit:write-failed', { records: lost });
  });
  const recentFlows = config.flowView.enabled && config.listen.admin ? new RecentFlows(config.flowView.records) : null;
  // Everything that writes records writes through this: to the sink(s), and a summary to /flows.
  const records = recentFlows ? teeRecords(audit, recentFlows) : audit;
  const redactor = new Redactor({ headers: config.audit.redactHeaders, queryParams: config.audit.redactQueryParams });
  const { upstream, limits } = config;
  const egress = new Egress({
    resolver: new Resolver({
      hosts: upstream.hosts,
      servers: options.dnsServers ?? upstream.dnsServers,
      maxEntries: upstream.dnsCacheSize,
      negativeTtlMs: upstream.dnsNegativeTtlMs,
      maxTtlMs: upstream.dnsMaxTtlMs,
    }),
    guard: new AddressGuard(upstream.allowAddresses),
    isOwnListener: (address, port) => listeners.isOwnListener(address, port),
    connectTimeoutMs: upstream.connectTimeoutMs,
    originContext: createOriginContext(upstream.caFile),
    // Parent proxies: credentials read now (a missing file fails start-up), the way out to each
    // destination chosen by the policy in force (policy/decide.ts routeFor).
    parents: loadParents(upstream.parents, config.sourcePath),
    route: (target) => routeFor(policies.current, target.host, target.port),
  });
  const h1Pools = new H1Pools(egress, { maxSocketsPerHost: upstream.maxSocketsPerHost, idleTimeoutMs: upstream.idleTimeoutMs });
  const h2Sessions = new H2Sessions(egress, { idleTimeoutMs: upstream.idleTimeoutMs });
  const httpCache = new HttpCache({ ...config.cache, name: config.http.via });
  const forwarder = new HttpForwarder({
    audit: records,
    redactor,
    via: config.http.via,
    xForwardedFor: config.http.xForwardedFor,
    responseTimeoutMs: upstream.responseTimeoutMs,
    originIdleTimeoutMs: upstream.idleTimeoutMs,
    tunnelIdleTimeoutMs: limits.clientIdleTimeoutMs,
    legs: { http1: new Http1OriginLeg(h1Pools), http2: new Http2OriginLeg(h2Sessions) },
    cache: httpCache,
  });
  const flows: FlowServices = { logger, audit: records, recordInLog: config.audit.file !== 'stdout' };
  const entry = new HttpEntry({
    audit: records,
    redactor,
    policy: () => policies.current,
    forwarder,
    flows,
    maxHeaders: config.http.maxHeaders,
    auth: users ? { store: users, realm: config.auth.realm } : null,
    transparentPort: config.transparent.httpOriginPort,
  });
  const pinning = new PinningMonitor({ ...config.pinning, ledger: pinningLedger(config, state) }, logger, (name, clients, until) => records.write(pinningRecord(name, clients, until)));
  // Tunnels carrying something other than HTTPS: cleartext HTTP to inspected destinations,
  // decrypted streams that are not HTTP, and origins that speak first (terminals/, relay/).
  const cleartext = new CleartextHttpTerminal({
    entry,
    headerTimeoutMs: limits.headerTimeoutMs,
    idleTimeoutMs: limits.clientIdleTimeoutMs,
    maxHeaderBytes: config.http.maxHeaderBytes,
    maxHeaders: config.http.maxHeaders,
  });
  const streams = new DecryptedStreams({
    connect: async (target, tls) => {
      const connection = await egress.connect(target, { halfOpen: true, tls: { servername: tls.servername, verifyCertificate: tls.verifyCertificate, ...(tls.alpn ? { alpn: tls.alpn } : {}) } });
      return { socket: connection.socket as TLSSocket, address: connection.remote.address };
    },
    peek: (socket, timeoutMs, originSpoke) => peekClientBytes(socket, Buffer.alloc(0), { timeoutMs, ...(originSpoke ? { originSpoke } : {}) }),
    idleTimeoutMs: limits.clientIdleTimeoutMs,
    serverFirstWaitMs: limits.serverFirstWaitMs,
    headerTimeoutMs: limits.headerTimeoutMs,
  });
  const inspector = new TlsInspector({
    streams,
    leaves,
    entry,
    handshakeTimeoutMs: limits.tlsHandshakeTimeoutMs,
    headerTimeoutMs: limits.headerTimeoutMs,
    idleTimeoutMs: limits.clientIdleTimeoutMs,
    maxHeaderBytes: config.http.maxHeaderBytes,
    maxHeaders: config.http.maxHeaders,
    pinning,
    warmup: new OriginWarmup(egress, h1Pools, h2Sessions, { ttlMs: ORIGIN_ALPN_TTL_MS, maxEntries: config.ca.leafCacheSize }),
  });
  const tunnels: TunnelDeps = {
    policy: () => policies.current,
    autoSpliced: () => pinning.splicedNames(),
    dial: async (target, client) => {
      // halfOpen: each side's FIN travels through the splice as a FIN.
      // The origin's bytes are read into reused buffers and written straight to the client.
      const reads = new OriginReads();
      const watched = watchFirstOriginBytes(reads.onread);
      const connection = await egress.connect(target, { halfOpen: true, onread: watched.onread });
      return { leg: new Relay(client, connection.socket, limits.clientIdleTimeoutMs, reads), address: connection.remote.address, originSpoke: watched.spoke };
    },
    check: (target) => egress.checkReachable(target),
    peek: (client, initial, timeoutMs, originSpoke) => peekClientBytes(client, initial, { timeoutMs, ...(originSpoke ? { originSpoke } : {}) }),
    inspector,
    cleartext,
    serverFirstWaitMs: limits.serverFirstWaitMs,
    peekTimeoutMs: limits.peekTimeoutMs,
    idleTimeoutMs: limits.clientIdleTimeoutMs,
    connectTimeoutMs: upstream.connectTimeoutMs,
  };
  const socksCommands = {
    udp: {
      policy: () => policies.current,
      resolver: egress,
      audit: records,
      idleTimeoutMs: limits.socksUdpIdleTimeoutMs,
      maxDatagrams: limits.socksUdpMaxDatagrams,
      maxBytes: limits.socksUdpMaxBytes,
    },
    bind: {
      policy: () => policies.current,
      resolveAllowed: (target: Parameters<Egress['resolveAllowed']>[0]) => egress.resolveAllowed(target),
      timeoutMs: limits.socksBindTimeoutMs,
      idleTimeoutMs: limits.clientIdleTimeoutMs,
    },
  };
  const closeOrigins = (): void => {
    h1Pools.destroy();
    h2Sessions.destroy();
  };
  return { audit, recentFlows, syslog, state, policies, users, authority, leaves, pinning, httpCache, entry, tunnels, flows, socksCommands, redactor, closeOrigins, rotateKeys: () => keys.rotate() };
}

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
    await this.listeners.drain(graceMs);
    await this.listeners.closeAdmin();
    this.metrics?.close();
    this.services.closeOrigins();
    // Connection records are written on socket close; give those callbacks a turn.
    await new Promise((resolve) => setImmediate(resolve));
    await this.services.audit.close();
    await this.services.state?.close();
    this.logger.info({ audit_records: this.services.audit.stats.written }, 'gateway stopped');
  }
}
