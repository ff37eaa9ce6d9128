import type { TLSSocket } from 'node:tls';
import { RecentFlows, teeRecords } from './admin/flow-view/recent-flows';
import { pinningRecord } from './audit/records';
import { Redactor } from './audit/redact';
import type { AuditSink } from './audit/sink';
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
import { OpenFlows } from './flow/open-flows';
import type { Listeners } from './frontends/listeners';
import type { SocksBindOptions } from './frontends/socks-bind';
import type { SocksUdpOptions } from './frontends/socks-udp';
import { HttpCache } from './http/cache/http-cache';
import { HttpEntry } from './http/entry';
import { HttpForwarder } from './http/forward';
import { Http1OriginLeg } from './http/origin-h1';
import { Http2OriginLeg } from './http/origin-h2';
import type { Authenticator } from './identity/principal';
import type { UserStore } from './identity/user-store';
import type { Logger } from './logging/logger';
import { withProgress } from './logging/progress';
import { PolicyStore } from './policy/policy-store';
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
import { publish } from './observability/events';

/**
 * The long-lived services of the pipeline, built once from the configuration: the egress door
 * and its pools, the HTTP entry and forwarder, the terminals, the tunnel dependencies, audit,
 * identity, policy and certificates. gateway.ts binds the front-ends to them.
 */

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

/** How long an origin's ALPN answer (h2 or not) is reused before it is probed again. */
const ORIGIN_ALPN_TTL_MS = 10 * 60_000;

/** The long-lived services the pipeline shares, built once from the configuration. */
export interface Services {
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
  /** The flows open now: cut and waited for at the end of a SIGTERM drain. */
  readonly openFlows: OpenFlows;
  /** SOCKS5 UDP ASSOCIATE and BIND. */
  readonly socksCommands: { readonly udp: SocksUdpOptions; readonly bind: SocksBindOptions };
  readonly redactor: Redactor;
  /** Closes the origin connection pools. */
  readonly closeOrigins: () => void;
  readonly rotateKeys: () => Promise<void>;
}

export async function buildServices(config: GatewayConfig, options: GatewayOptions, listeners: Listeners): Promise<Services> {
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
  const openFlows = new OpenFlows();
  const flows: FlowServices = { logger, audit: records, recordInLog: config.audit.file !== 'stdout', open: openFlows };
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
  return {
    audit,
    recentFlows,
    syslog,
    state,
    policies,
    users,
    authority,
    leaves,
    pinning,
    httpCache,
    entry,
    tunnels,
    flows,
    openFlows,
    socksCommands,
    redactor,
    closeOrigins,
    rotateKeys: () => keys.rotate(),
  };
}
