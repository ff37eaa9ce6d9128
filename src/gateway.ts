import type { AddressInfo, Server, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { NdjsonAuditSink } from './audit/sink';
import type { GatewayConfig } from './config/schema';
import type { ListenAddress } from './config/fields';
import { AddressGuard } from './egress/address-guard';
import type { Egress } from './egress/dial';
import { Resolver } from './egress/resolve';
import { GatewayError } from './errors/gateway-error';
import { ConnectionLimiter, type OverloadReply, closeSilently } from './frontends/connection-limiter';
import { createExplicitServer } from './frontends/explicit';
import { UserStore } from './identity/user-store';
import { writeRawHttpRefusal } from './errors/rejection';
import { HttpForwarder } from './http/forward';
import { H2OriginPool } from './http/h2-origin';
import type { PlainHttpServices } from './http/serve-request';
import type { Logger } from './logging/logger';
import { ConfigError } from './config/config-error';
import { loadConfig } from './config/load';
import { loadPolicy } from './policy/load';
import { PolicyStore, type ReloadStatus } from './policy/policy-store';
import type { Action, CompiledPolicy } from './policy/types';
import { watchForChanges } from './policy/watch';
import { PinningMonitor } from './tunnel/pinning-monitor';
import { loadOrCreateAuthority } from './tls/authority';
import { LeafKeyPool } from './tls/key-pool';
import { LeafCache } from './tls/leaf-cache';
import { createOriginAgents, type OriginAgents } from './tls/origin';
import { OriginAlpnCache } from './tls/origin-alpn';
import { TlsInspector } from './tunnel/inspect';
import { finishFlow, type Inspector, type TunnelServices } from './tunnel/run-tunnel';

export type ListenerName = 'explicit' | 'socks' | 'transparentTls' | 'transparentHttp' | 'admin';

export interface GatewayOptions {
  readonly logger: Logger;
  /** Nameservers for the gateway's resolver instead of the system's. */
  readonly dnsServers?: readonly string[];
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
const RESTART_SECTIONS = ['workers', 'listen', 'transparent', 'ca', 'upstream', 'http', 'limits', 'audit', 'pinning', 'auth', 'log'] as const;

function sectionsNeedingRestart(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_SECTIONS.filter((key) => JSON.stringify(running[key]) !== JSON.stringify(next[key]));
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
  private stopping: Promise<void> | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  /** One count of open client connections shared by every listener except admin. */
  readonly connections: ConnectionLimiter;

  private constructor(
    readonly config: GatewayConfig,
    private readonly logger: Logger,
    private readonly audit: NdjsonAuditSink,
    private readonly forwarder: HttpForwarder,
    private readonly originAgents: OriginAgents,
    readonly egress: Egress,
    private readonly inspector: Inspector | null,
    readonly leaves: LeafCache,
    private readonly policies: PolicyStore,
    readonly pinning: PinningMonitor,
    /**
     * The users file in force (null: no authentication); reloaded with the policy. It is the
     * Authenticator of every front-end that carries credentials (SOCKS5 too).
     */
    readonly users: UserStore | null,
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
    const { authority, created } = await loadOrCreateAuthority({
      certPath: config.ca.cert,
      keyPath: config.ca.key,
      chainPath: config.ca.chain,
      keyType: config.ca.keyType,
      logger,
    });
    if (created) logger.info({ cert: config.ca.cert }, 'install this CA certificate on clients (tollgate ca export)');
    const keys = await LeafKeyPool.create({ keyType: config.ca.leafKeyType, caSpkiDer: authority.spkiDer, logger });
    const leaves = new LeafCache({ authority, keys, maxEntries: config.ca.leafCacheSize, validityMs: config.ca.leafValidityMs, logger });
    const audit = NdjsonAuditSink.open(config.audit.file, (err) => logger.error({ err }, 'audit write failed'));
    let gateway: Gateway | null = null;
    const egress: Egress = {
      resolver: new Resolver({ hosts: config.upstream.hosts, ...(options.dnsServers ? { servers: options.dnsServers } : {}) }),
      guard: new AddressGuard(config.upstream.allowAddresses),
      isOwnListener: (address, port) => gateway?.isOwnListener(address, port) ?? false,
      connectTimeoutMs: config.upstream.connectTimeoutMs,
    };
    const originAgents = createOriginAgents({
      caFile: config.upstream.caFile,
      maxSocketsPerHost: config.upstream.maxSocketsPerHost,
      idleTimeoutMs: config.upstream.idleTimeoutMs,
    });
    const forwarder = new HttpForwarder({
      egress,
      audit,
      originAgents,
      via: config.http.via,
      xForwardedFor: config.http.xForwardedFor,
      responseTimeoutMs: config.upstream.responseTimeoutMs,
      idleTimeoutMs: config.upstream.idleTimeoutMs,
      maxSocketsPerHost: config.upstream.maxSocketsPerHost,
      redactQueryParams: config.audit.redactQueryParams,
      tunnelIdleTimeoutMs: config.limits.clientIdleTimeoutMs,
      h2Origins: new H2OriginPool({ egress, secureContext: originAgents.secureContext, idleTimeoutMs: config.upstream.idleTimeoutMs }),
    });
    const pinning = new PinningMonitor(config.pinning, logger, (name, clients, until) => {
      audit.write({
        type: 'pinning',
        time: new Date().toISOString(),
        name,
        action: 'auto-splice',
        distinct_clients: clients,
        until: until.toISOString(),
        reason: `${clients} distinct clients rejected the minted certificate for ${name}`,
      });
    });
    const inspector = new TlsInspector({
      leaves,
      forwarder,
      policy: () => gateway!.policy,
      audit,
      redactQueryParams: config.audit.redactQueryParams,
      handshakeTimeoutMs: config.limits.tlsHandshakeTimeoutMs,
      headerTimeoutMs: config.limits.headerTimeoutMs,
      idleTimeoutMs: config.limits.clientIdleTimeoutMs,
      maxHeaderBytes: config.http.maxHeaderBytes,
      maxHeaders: config.http.maxHeaders,
      pinning,
      originAlpn: new OriginAlpnCache({
        egress,
        secureContext: originAgents.secureContext,
        connectTimeoutMs: config.upstream.connectTimeoutMs,
        ttlMs: ORIGIN_ALPN_TTL_MS,
        maxEntries: config.ca.leafCacheSize,
      }),
    });
    gateway = new Gateway(config, logger, audit, forwarder, originAgents, egress, inspector, leaves, policies, pinning, users);
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
      redactQueryParams: this.config.audit.redactQueryParams,
      finishConnection: (flow) => finishFlow(flow, 'client-closed', this.audit),
    };
  }

  private async listen(): Promise<void> {
    const { listen } = this.config;
    const unsupported = (['socks', 'transparentTls', 'transparentHttp', 'admin'] as const).filter((name) => listen[name] !== null);
    if (unsupported.length > 0) {
      throw new GatewayError('TG_ERR_CONFIG', 'startup', `listeners not available in this build: ${unsupported.join(', ')}; set them to null`);
    }
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
  }

  private bind(name: ListenerName, server: Server, at: ListenAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new GatewayError('TG_ERR_CONFIG', 'startup', `cannot listen on ${at.host}:${at.port} (listen.${name}): ${err.code ?? err.message}`, { cause: err }));
      };
      server.once('error', onError);
      // Admission before anything else sees the socket; the admin listener stays reachable
      // when the gateway is full, so operators can still look at it.
      if (name !== 'admin') this.connections.guard(server, frontendOf(name), overloadReplyOf(name));
      server.on('connection', (socket: Socket) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
      });
      server.listen({ host: at.host, port: at.port }, () => {
        server.removeListener('error', onError);
        server.on('error', (err) => this.logger.error({ err, listener: name }, 'listener error'));
        const address = server.address() as AddressInfo;
        this.servers.set(name, server);
        this.bound.set(name, address);
        this.logger.info({ listener: name, address: address.address, port: address.port }, 'listening');
        resolve();
      });
    });
  }

  /** Whether address:port reaches one of our own listeners (refused: a proxy loop). */
  isOwnListener(address: string, port: number): boolean {
    for (const bound of this.bound.values()) {
      if (bound.port !== port) continue;
      if (bound.address === address) return true;
      if (bound.address === '0.0.0.0' || bound.address === '::') {
        if (isLocalAddress(address)) return true;
      }
    }
    return false;
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
    for (const timer of this.timers) clearInterval(timer);
    this.stopWatching();
    this.pinning.persist();
    const closed = [...this.servers.values()].map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const server of this.servers.values()) (server as Partial<{ closeIdleConnections: () => void }>).closeIdleConnections?.();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
      for (const server of this.servers.values()) (server as Partial<{ closeIdleConnections: () => void }>).closeIdleConnections?.();
    }
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closed);
    this.forwarder.destroy();
    this.originAgents.verified.destroy();
    this.originAgents.insecure.destroy();
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

function isLocalAddress(address: string): boolean {
  if (address.startsWith('127.') || address === '::1') return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (info.address === address) return true;
  }
  return false;
}
