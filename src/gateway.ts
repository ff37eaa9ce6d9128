import type { AddressInfo, Server, Socket } from 'node:net';
import path from 'node:path';
import { pinningRecord } from './audit/records';
import { Redactor } from './audit/redact';
import { NdjsonAuditSink } from './audit/sink';
import type { GatewayConfig } from './config/schema';
import type { ListenAddress } from './sources/fields';
import { createAdminServer } from './admin/admin-server';
import { GatewayMetrics } from './admin/metrics';
import { checkReadiness, type Readiness } from './admin/readiness';
import { AddressGuard } from './egress/address-guard';
import { Egress } from './egress/egress';
import { H1Pools } from './egress/h1-pools';
import { H2Sessions } from './egress/h2-sessions';
import { createOriginContext } from './egress/origin-tls';
import { reachesListener } from './egress/loop-check';
import { Resolver } from './egress/resolve';
import { GatewayError } from './errors/gateway-error';
import { ConnectionLimiter, type OverloadReply, closeSilently } from './frontends/connection-limiter';
import { createExplicitServer } from './frontends/explicit';
import { createSocksServer } from './frontends/socks';
import { createTransparentHttpServer } from './frontends/transparent-http';
import { createTransparentTlsServer } from './frontends/transparent-tls';
import type { Authenticator } from './identity/types';
import { HttpCache } from './http/cache/exchange';
import { UserStore } from './identity/user-store';
import { requireProxyProtocol } from './frontends/proxy-protocol';
import { writeRawHttpRefusal } from './errors/rejection';
import { HttpForwarder } from './http/forward';
import { Http1OriginLeg } from './http/origin-h1';
import { Http2OriginLeg } from './http/origin-h2';
import type { PlainHttpServices } from './http/serve-request';
import type { Logger } from './logging/logger';
import { ConfigError } from './sources/config-error';
import { withProgress } from './logging/progress';
import { loadConfig } from './config/load';
import { loadPolicy } from './policy/load';
import { PolicyStore, type ReloadStatus } from './policy/policy-store';
import type { Action, CompiledPolicy } from './policy/types';
import { watchForChanges } from './policy/watch';
import { PinningMonitor } from './tunnel/pinning-monitor';
import { type CertificateAuthority, loadOrCreateAuthority } from './tls/authority';
import { LeafKeyPool } from './tls/key-pool';
import { LeafCache } from './tls/leaf-cache';
import { OriginAlpnCache } from './egress/alpn-probe';
import { TlsInspector } from './tunnel/inspect';
import { finishFlow, type Inspector, type TunnelServices } from './tunnel/run-tunnel';

export type ListenerName = 'explicit' | 'socks' | 'transparentTls' | 'transparentHttp' | 'admin';

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

/** Actions this build can carry out; a policy asking for another is refused at load. */
export const SUPPORTED_ACTIONS: readonly Action[] = ['deny', 'splice', 'inspect'];

/** Leaf keys are replaced one at a time, so no key signs leaves for more than a few days. */
const KEY_ROTATION_MS = 24 * 3_600_000;

/** How long an origin's ALPN answer (h2 or not) is reused before it is probed again. */
const ORIGIN_ALPN_TTL_MS = 10 * 60_000;

/** `authConfigured` comes from the running configuration: auth changes need a restart. */
function compilePolicyFor(config: GatewayConfig, authConfigured: boolean): CompiledPolicy {
  return loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
    authConfigured,
  });
}

/** Loads the users file when one is configured; throws ConfigError (file and line) if invalid. */
function loadUsers(config: GatewayConfig, logger: Logger): UserStore | null {
  const { auth } = config;
  if (auth.usersFile === null) return null;
  if (path.dirname(auth.usersFile) === config.policiesDir) {
    // Every *.yaml file there is read as a policy file.
    throw new ConfigError([{ file: config.sourcePath, line: null, path: 'auth.users_file', message: 'the users file may not be in the policy directory; move it next to the configuration file' }]);
  }
  const store = UserStore.load({ file: auth.usersFile, maxFailures: auth.maxFailures, failureWindowMs: auth.failureWindowMs, cacheTtlMs: auth.cacheTtlMs }, logger);
  logger.info({ users_file: auth.usersFile, users: store.userCount, users_version: store.version, realm: auth.realm }, 'proxy authentication on: users loaded');
  return store;
}

/** Configuration sections a reload cannot change in a running process. */
const RESTART_SECTIONS = ['workers', 'listen', 'transparent', 'ca', 'upstream', 'http', 'cache', 'limits', 'audit', 'pinning', 'auth', 'log', 'pac'] as const;

/** Config keys of the listeners, as operators write them (readiness reasons name these). */
const LISTENER_CONFIG_KEYS: Readonly<Record<ListenerName, string>> = {
  explicit: 'explicit',
  socks: 'socks',
  transparentTls: 'transparent_tls',
  transparentHttp: 'transparent_http',
  admin: 'admin',
};

function sectionsNeedingRestart(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_SECTIONS.filter((key) => JSON.stringify(running[key]) !== JSON.stringify(next[key]));
}

/**
 * Loads the configured CA, generating it on first start (and saying where to find it for
 * clients). Shared by a gateway and by the primary of several workers, which creates the CA
 * before they start so they do not race to generate their own.
 */
export async function loadGatewayAuthority(config: GatewayConfig, logger: Logger): Promise<CertificateAuthority> {
  const { authority, created } = await withProgress(
    logger,
    'loading the gateway CA (generating it on first start)',
    loadOrCreateAuthority({
      certPath: config.ca.cert,
      keyPath: config.ca.key,
      chainPath: config.ca.chain,
      keyType: config.ca.keyType,
      logger,
    }),
  );
  if (created) logger.info({ cert: config.ca.cert }, 'install this CA certificate on clients (tollgate ca export)');
  return authority;
}

/**
 * The composition root: builds the shared services once (policy, resolver, destination guard,
 * origin connection pools, audit sink), wires the front-ends to them, and owns the lifecycle.
 * Nothing else lives here.
 */
export class Gateway {
  private readonly servers = new Map<ListenerName, Server>();
  private readonly bound = new Map<ListenerName, AddressInfo>();
  private readonly sockets = new Set<Socket>();
  /** Admin connections are tracked apart: they are not client traffic, and close last. */
  private readonly adminSockets = new Set<Socket>();
  private stopping: Promise<void> | null = null;
  private draining = false;
  private metrics: GatewayMetrics | null = null;
  readonly startedAt = new Date();
  private readonly timers: NodeJS.Timeout[] = [];
  /** One count of open client connections shared by every listener except admin. */
  readonly connections: ConnectionLimiter;

  private constructor(
    readonly config: GatewayConfig,
    private readonly logger: Logger,
    private readonly audit: NdjsonAuditSink,
    private readonly forwarder: HttpForwarder,
    /** The origin connection pools (HTTP/1 agents, HTTP/2 sessions), closed on stop. */
    private readonly originPools: { destroy(): void },
    readonly egress: Egress,
    private readonly inspector: Inspector | null,
    readonly leaves: LeafCache,
    private readonly policies: PolicyStore,
    readonly pinning: PinningMonitor,
    readonly httpCache: HttpCache,
    /**
     * The users file in force (null: no authentication); reloaded with the policy. It is the
     * Authenticator of every front-end that carries credentials (SOCKS5 too).
     */
    readonly users: UserStore | null,
    readonly authority: CertificateAuthority,
    /** What SOCKS5 verifies credentials with: `users`, unless the embedder passed its own. */
    private readonly authenticator: Authenticator | null,
    private readonly redactor: Redactor,
  ) {
    this.connections = new ConnectionLimiter(
      { maxConnections: config.limits.maxConnections, maxConnectionsPerClient: config.limits.maxConnectionsPerClient },
      logger,
    );
  }


  static async start(config: GatewayConfig, options: GatewayOptions): Promise<Gateway> {
    const logger = options.logger;
    const users = loadUsers(config, logger);
    const authConfigured = users !== null;
    // The first compile uses the configuration we were given; reloads re-read its file, and a
    // broken file fails the reload like a broken policy does.
    let reloading = false;
    const policies = new PolicyStore(() => {
      const next = reloading ? loadConfig(config.sourcePath) : config;
      reloading = true;
      const restart = sectionsNeedingRestart(config, next);
      if (restart.length > 0) logger.warn({ sections: restart }, 'configuration changes in these sections take effect after a restart');
      return compilePolicyFor(next, authConfigured);
    }, logger);
    const authority = await loadGatewayAuthority(config, logger);
    const keys = await withProgress(logger, 'generating leaf keys', LeafKeyPool.create({ keyType: config.ca.leafKeyType, caSpkiDer: authority.spkiDer, logger }));
    const leaves = new LeafCache({ authority, keys, maxEntries: config.ca.leafCacheSize, validityMs: config.ca.leafValidityMs, logger });
    const audit = NdjsonAuditSink.open(config.audit.file, (err) => logger.error({ err }, 'audit write failed'));
    const redactor = new Redactor({ headers: config.audit.redactHeaders, queryParams: config.audit.redactQueryParams });
    let gateway: Gateway | null = null;
    const egress = new Egress({
      resolver: new Resolver({
        hosts: config.upstream.hosts,
        servers: options.dnsServers ?? config.upstream.dnsServers,
        maxEntries: config.upstream.dnsCacheSize,
        negativeTtlMs: config.upstream.dnsNegativeTtlMs,
        maxTtlMs: config.upstream.dnsMaxTtlMs,
      }),
      guard: new AddressGuard(config.upstream.allowAddresses),
      isOwnListener: (address, port) => gateway?.isOwnListener(address, port) ?? false,
      connectTimeoutMs: config.upstream.connectTimeoutMs,
      originContext: createOriginContext(config.upstream.caFile),
    });
    const h1Pools = new H1Pools(egress, { maxSocketsPerHost: config.upstream.maxSocketsPerHost, idleTimeoutMs: config.upstream.idleTimeoutMs });
    const h2Sessions = new H2Sessions(egress, { idleTimeoutMs: config.upstream.idleTimeoutMs });
    const originPools = { destroy: () => (h1Pools.destroy(), h2Sessions.destroy()) };
    const httpCache = new HttpCache({ ...config.cache, name: config.http.via });
    const forwarder = new HttpForwarder({
      audit,
      redactor,
      via: config.http.via,
      xForwardedFor: config.http.xForwardedFor,
      responseTimeoutMs: config.upstream.responseTimeoutMs,
      originIdleTimeoutMs: config.upstream.idleTimeoutMs,
      tunnelIdleTimeoutMs: config.limits.clientIdleTimeoutMs,
      legs: { http1: new Http1OriginLeg(h1Pools), http2: new Http2OriginLeg(h2Sessions) },
      cache: httpCache,
    });
    const pinning = new PinningMonitor(config.pinning, logger, (name, clients, until) => audit.write(pinningRecord(name, clients, until)));
    const inspector = new TlsInspector({
      leaves,
      forwarder,
      audit,
      redactor,
      handshakeTimeoutMs: config.limits.tlsHandshakeTimeoutMs,
      headerTimeoutMs: config.limits.headerTimeoutMs,
      idleTimeoutMs: config.limits.clientIdleTimeoutMs,
      maxHeaderBytes: config.http.maxHeaderBytes,
      maxHeaders: config.http.maxHeaders,
      pinning,
      originAlpn: new OriginAlpnCache(egress, { ttlMs: ORIGIN_ALPN_TTL_MS, maxEntries: config.ca.leafCacheSize }),
    });
    gateway = new Gateway(config, logger, audit, forwarder, originPools, egress, inspector, leaves, policies, pinning, httpCache, users, authority, options.authenticator ?? users, redactor);
    const rotation = setInterval(() => void keys.rotate(), KEY_ROTATION_MS);
    rotation.unref();
    gateway.timers.push(rotation);
    try {
      await gateway.listen();
    } catch (err) {
      await gateway.stop(0);
      throw err;
    }
    const policy = policies.current;
    logger.info({ policy_version: policy.version, rules: policy.rules.length, default_action: policy.defaultAction }, 'policy loaded');
    gateway.stopWatching = watchForChanges(
      [
        { dir: config.policiesDir, names: null },
        { dir: path.dirname(config.sourcePath), names: new Set([path.basename(config.sourcePath)]) },
        ...(users ? [{ dir: path.dirname(users.file), names: new Set([path.basename(users.file)]) }] : []),
      ],
      (changed) => gateway!.reload(`file change: ${changed}`),
      logger,
    );
    return gateway;
  }

  /** Resolves once every audit record so far has been handed to the OS. */
  flushAudit(): Promise<void> {
    return this.audit.flush();
  }

  get policy(): CompiledPolicy {
    return this.policies.current;
  }

  get lastReload(): ReloadStatus {
    return this.policies.lastReload;
  }

  private stopWatching: () => void = () => undefined;

  /**
   * Re-reads the configuration and policy files (SIGHUP, or a file change). Invalid files leave
   * the running policy in force; the error is logged with file and line.
   */
  reload(trigger: string): ReloadStatus {
    const status = this.policies.reload(trigger);
    const users = this.users?.reload(trigger);
    if (!users || users.ok) return status;
    // An invalid users file keeps the users in force; the reload as a whole reports the failure.
    return { ...status, ok: false, problems: [...status.problems, ...users.problems] };
  }

  /** Bound address of a listener (port 0 in the configuration becomes the real port here). */
  address(name: ListenerName): AddressInfo | null {
    return this.bound.get(name) ?? null;
  }

  private tunnelServices(): TunnelServices {
    return {
      policy: () => this.policies.current,
      egress: this.egress,
      audit: this.audit,
      inspector: this.inspector,
      peekTimeoutMs: this.config.limits.peekTimeoutMs,
      idleTimeoutMs: this.config.limits.clientIdleTimeoutMs,
      autoSpliced: () => this.pinning.splicedNames(),
    };
  }

  private plainServices(): PlainHttpServices {
    return {
      policy: () => this.policies.current,
      forwarder: this.forwarder,
      audit: this.audit,
      logger: this.logger,
      redactor: this.redactor,
      finishConnection: (flow) => finishFlow(flow, 'client-closed', this.audit),
    };
  }

  private async listen(): Promise<void> {
    const { listen } = this.config;
    if (listen.explicit) {
      const server = createExplicitServer(
        {
          maxHeaderBytes: this.config.http.maxHeaderBytes,
          headerTimeoutMs: this.config.limits.headerTimeoutMs,
          maxHeaders: this.config.http.maxHeaders,
          clientIdleTimeoutMs: this.config.limits.clientIdleTimeoutMs,
          auth: this.users ? { store: this.users, realm: this.config.auth.realm } : null,
        },
        this.plainServices(),
        this.tunnelServices(),
        this.logger,
      );
      await this.bind('explicit', server, listen.explicit);
    }
    if (listen.socks) {
      const server = createSocksServer(
        { handshakeTimeoutMs: this.config.limits.socksHandshakeTimeoutMs, authenticator: this.authenticator },
        this.tunnelServices(),
        this.logger,
      );
      await this.bind('socks', server, listen.socks);
    }
    if (listen.transparentTls) {
      const server = createTransparentTlsServer(
        { originPort: this.config.transparent.tlsOriginPort, peekTimeoutMs: this.config.limits.peekTimeoutMs, noSni: this.config.transparent.noSni },
        this.tunnelServices(),
        this.logger,
      );
      await this.bind('transparentTls', server, listen.transparentTls);
    }
    if (listen.transparentHttp) {
      const server = createTransparentHttpServer(
        {
          originPort: this.config.transparent.httpOriginPort,
          maxHeaderBytes: this.config.http.maxHeaderBytes,
          headerTimeoutMs: this.config.limits.headerTimeoutMs,
          clientIdleTimeoutMs: this.config.limits.clientIdleTimeoutMs,
        },
        this.plainServices(),
        this.logger,
      );
      await this.bind('transparentHttp', server, listen.transparentHttp);
    }
    if (listen.admin) await this.bind('admin', this.createAdmin(), listen.admin);
  }

  /** Whether a balancer should send traffic here; reasons when not. */
  readiness(): Readiness {
    const configured = (Object.keys(LISTENER_CONFIG_KEYS) as ListenerName[]).filter((name) => this.config.listen[name] !== null);
    return checkReadiness({
      configured: configured.map((name) => LISTENER_CONFIG_KEYS[name]),
      bound: [...this.bound.keys()].map((name) => LISTENER_CONFIG_KEYS[name]),
      caNotAfter: this.authority.notAfter,
      policyRules: this.policies.current.rules.length,
      draining: this.draining,
    });
  }

  private createAdmin(): Server {
    const metrics = new GatewayMetrics({
      leafCacheSize: () => this.leaves.size,
      policyVersion: () => this.policies.current.version,
      lastReload: () => this.policies.lastReload,
      openConnections: () => this.sockets.size,
    });
    this.metrics = metrics;
    return createAdminServer({
      logger: this.logger.child({ listener: 'admin' }),
      authority: this.authority,
      metrics,
      pac: this.config.pac,
      readiness: () => this.readiness(),
      explicitAddress: () => this.address('explicit'),
      status: () => ({
        readiness: this.readiness(),
        startedAt: this.startedAt,
        listeners: [...this.bound.entries()].map(([name, a]) => ({ name: LISTENER_CONFIG_KEYS[name], address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` })),
        policyVersion: this.policies.current.version,
        rules: this.policies.current.rules.length,
        lastReload: this.policies.lastReload,
        caFingerprint: this.authority.fingerprint256,
        caNotAfter: this.authority.notAfter,
        leafCacheSize: this.leaves.size,
        openConnections: this.sockets.size,
      }),
    });
  }

  private bind(name: ListenerName, server: Server, at: ListenAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new GatewayError('TG_ERR_CONFIG', 'startup', `cannot listen on ${at.host}:${at.port} (listen.${name}): ${err.code ?? err.message}`, { cause: err }));
      };
      server.once('error', onError);
      // Admission before the front-end sees the socket; the admin listener stays reachable when
      // the gateway is full, so operators can still look at it. Each call wraps the handlers
      // registered before it, so the last one runs first. Behind a load balancer: the global
      // limit at accept (a connection waiting for its PROXY header holds a descriptor like any
      // other), then the header, then the per-client limit with the client the header names.
      if (name !== 'admin') {
        const frontend = frontendOf(name);
        const reply = overloadReplyOf(name);
        if (this.config.listen.proxyProtocol.includes(name)) {
          this.connections.guard(server, frontend, reply, 'per-client');
          requireProxyProtocol(server, { timeoutMs: this.config.limits.proxyHeaderTimeoutMs, listener: LISTENER_CONFIG_KEYS[name], frontend, logger: this.logger });
          this.connections.guard(server, frontend, reply, 'total');
        } else {
          this.connections.guard(server, frontend, reply);
        }
      }
      const tracked = name === 'admin' ? this.adminSockets : this.sockets;
      server.on('connection', (socket: Socket) => {
        tracked.add(socket);
        socket.once('close', () => tracked.delete(socket));
      });
      server.listen({ host: at.host, port: at.port }, () => {
        server.removeListener('error', onError);
        server.on('error', (err) => this.logger.error({ err, listener: name }, 'listener error'));
        const address = server.address() as AddressInfo;
        this.servers.set(name, server);
        this.bound.set(name, address);
        this.logger.info({ listener: name, address: address.address, port: address.port, proxy_protocol: name !== 'admin' && this.config.listen.proxyProtocol.includes(name) }, 'listening');
        resolve();
      });
    });
  }

  /**
   * Whether address:port reaches one of our own listeners (refused: a proxy loop), compared as
   * addresses: every outbound path asks this through the egress door (egress/egress.ts) with the address it dials.
   */
  isOwnListener(address: string, port: number): boolean {
    return reachesListener(address, port, this.bound.values());
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
    this.pinning.persist();
    // The admin listener stays up while draining, so /readyz tells balancers to stop sending.
    const proxyServers = [...this.servers.entries()].filter(([name]) => name !== 'admin').map(([, server]) => server);
    const closed = proxyServers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const server of proxyServers) (server as Partial<{ closeIdleConnections: () => void }>).closeIdleConnections?.();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
      for (const server of proxyServers) (server as Partial<{ closeIdleConnections: () => void }>).closeIdleConnections?.();
    }
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closed);
    const admin = this.servers.get('admin');
    if (admin) {
      const adminClosed = new Promise<void>((resolve) => admin.close(() => resolve()));
      for (const socket of this.adminSockets) socket.destroy();
      await adminClosed;
    }
    this.metrics?.close();
    this.originPools.destroy();
    // Connection records are written on socket close; give those callbacks a turn.
    await new Promise((resolve) => setImmediate(resolve));
    await this.audit.close();
    this.logger.info({ audit_records: this.audit.stats.written }, 'gateway stopped');
  }
}

/** The `frontend` label of a listener in logs and events. */
function frontendOf(name: ListenerName): string {
  return name === 'transparentTls' ? 'transparent-tls' : name === 'transparentHttp' ? 'transparent-http' : name;
}

/** Over a connection limit, HTTP front-ends answer 503; the others can only close. */
function overloadReplyOf(name: ListenerName): OverloadReply {
  if (name !== 'explicit' && name !== 'transparentHttp') return closeSilently;
  return (socket, error) => {
    // Read and drop what the client sends: closing with unread bytes would send a reset that
    // can destroy the 503 before the client reads it.
    socket.resume();
    writeRawHttpRefusal(socket, { kind: 'error', error }, 'none', 'gateway', { 'retry-after': '1' });
    setTimeout(() => socket.destroy(), 2_000).unref();
  };
}
