import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import path from 'node:path';
import type { SecureContext } from 'node:tls';
import { withReverseRoute } from '../audit/records';
import type { Redactor } from '../audit/redact';
import type { RecordWriter } from '../audit/sink';
import { BackendEgress } from '../egress/backends';
import { H1Pools } from '../egress/h1-pools';
import type { WarmupRequest } from '../egress/warmup';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import { type CloseKind, Flow, type FlowServices, peerAddress } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import type { HttpCache } from '../http/cache/http-cache';
import { type DecryptedTunnel, HttpEntry } from '../http/entry';
import type { ReverseBackend, ReverseSource } from '../http/reverse-source';
import { HttpForwarder } from '../http/forward';
import type { InboundRequest, InboundResponse } from '../http/inbound';
import { Http1OriginLeg } from '../http/origin-h1';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import type { Logger } from '../logging/logger';
import { subscribe } from '../observability/events';
import type { CompiledPolicy, FrontendKind } from '../policy/types';
import { watchForChanges } from '../policy/watch';
import { type Host, normaliseHost } from '../protocol/host';
import { TlsInspector } from '../terminals/inspect';
import type { LeafSubject } from '../tls/mint-leaf';
import { ServerCertificateSet } from '../tls/server-certificates';
import { ConfigError } from '../sources/config-error';
import { peekClientBytes } from '../tunnel/peek';
import type { Resolver } from '../egress/resolve';
import { type HttpListenerLimits, createHttpListener } from './http-listener';
import { type ReverseConfig, ReverseRouter } from './reverse-routes';

/**
 * The audit `frontend` of the reverse-proxy listeners. policy/types.ts's FrontendKind does not
 * list it yet; the policy never decides by front-end kind except for allowed ports, which the
 * reverse entry chooses explicitly (ReverseSource.policyFrontend).
 */
export const REVERSE_FRONTEND: FrontendKind = 'reverse';

export interface ReverseProxyOptions {
  readonly logger: Logger;
  readonly flows: FlowServices;
  readonly policy: () => CompiledPolicy;
  readonly redactor: Redactor;
  readonly cache: HttpCache;
  readonly via: string;
  /** The `reverse` block at start, and a way to read it again from the configuration file. */
  readonly initial: ReverseConfig;
  readonly reread: () => ReverseConfig;
  readonly sourcePath: string;
  readonly upstreamCaFile: string | null;
  readonly resolver: Resolver;
  readonly isOwnListener: (address: string, port: number) => boolean;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxSocketsPerHost: number;
  readonly httpLimits: HttpListenerLimits;
  readonly peekTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** listen.reverse is configured: reverse.certificates must list at least one pair. */
  readonly tlsListener: boolean;
}

/** What one loaded `reverse` block is: its routes and certificates, swapped in together. */
interface ReverseState {
  readonly router: ReverseRouter;
  readonly certificates: ServerCertificateSet;
  readonly files: ReverseConfig['certificates'];
}

/**
 * The reverse-proxy (ingress) listeners: `listen.reverse` terminates TLS with the operator's
 * certificates (chosen by SNI), `listen.reverse_http` takes cleartext; both hand each request to
 * the one HTTP entry (HttpEntry.reverse), which routes it by Host and path, decides on the
 * route's host, and forwards through the ordinary forwarding path to the route's backend. TLS
 * termination and HTTP/1.1 + HTTP/2 serving are the inspect terminal's (TlsInspector), not a
 * server of its own. Routes and certificates reload with the policy and when the certificate
 * files change; a broken update keeps the last good set.
 */
export class ReverseProxy {
  private state: ReverseState;
  private readonly backends: BackendEgress;
  private readonly pools: H1Pools;
  private readonly entry: ReverseEntry;
  private readonly inspector: TlsInspector;
  /** The route of each request between routing and its audit record. */
  private readonly routes = new Map<string, ReverseBackend>();
  private stopWatching: () => void = () => undefined;
  private closed = false;
  private readonly unsubscribe: () => void;

  private constructor(private readonly options: ReverseProxyOptions) {
    this.state = this.load(options.initial);
    this.backends = new BackendEgress({ resolver: options.resolver, isOwnListener: options.isOwnListener, connectTimeoutMs: options.connectTimeoutMs, upstreamCaFile: options.upstreamCaFile });
    this.backends.update(this.state.router.all);
    this.pools = new H1Pools(this.backends, { maxSocketsPerHost: options.maxSocketsPerHost, idleTimeoutMs: options.idleTimeoutMs });
    const audit = this.routeAnnotator(options.flows.audit);
    const forwarder = new HttpForwarder({
      audit,
      redactor: options.redactor,
      via: options.via,
      // The entry replaces X-Forwarded-For with the client it saw; appending would repeat it.
      xForwardedFor: false,
      responseTimeoutMs: options.responseTimeoutMs,
      originIdleTimeoutMs: options.idleTimeoutMs,
      tunnelIdleTimeoutMs: options.httpLimits.clientIdleTimeoutMs,
      // HTTP/2 is spoken to clients; backends get HTTP/1.1 (what application servers speak).
      legs: { http1: new Http1OriginLeg(this.pools), http2: null },
      cache: options.cache,
    });
    this.entry = new ReverseEntry(
      { audit, redactor: options.redactor, policy: options.policy, forwarder, flows: options.flows, maxHeaders: options.httpLimits.maxHeaders, auth: null, transparentPort: 80 },
      (tunnel) => this.tlsSource(tunnel.flow, tunnel),
    );
    this.inspector = new TlsInspector({
      // The operator's certificates, chosen by SNI, instead of minted leaves.
      leaves: { get: (subject: LeafSubject) => this.certificateFor(subject) },
      entry: this.entry,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      headerTimeoutMs: options.httpLimits.headerTimeoutMs,
      idleTimeoutMs: options.httpLimits.clientIdleTimeoutMs,
      maxHeaderBytes: options.httpLimits.maxHeaderBytes,
      maxHeaders: options.httpLimits.maxHeaders,
      pinning: null,
      // h2 to every client that offers it: backends get HTTP/1.1 whatever the client speaks, so
      // there is no origin answer to wait for and nothing to open ahead.
      warmup: { prepare: (request: WarmupRequest) => Promise.resolve(request.clientOffersH2) },
    });
    this.unsubscribe = subscribe('tollgate:policy:reloaded', () => this.reload('policy reload'));
    this.watchCertificates();
  }

  /** Loads routes and certificates; throws ConfigError (file, key, fix) when they cannot serve. */
  static create(options: ReverseProxyOptions): ReverseProxy {
    return new ReverseProxy(options);
  }

  get router(): ReverseRouter {
    return this.state.router;
  }

  get certificates(): ServerCertificateSet {
    return this.state.certificates;
  }

  /** The `listen.reverse` server: TLS with the operator's certificates, HTTP/1.1 and HTTP/2 inside. */
  tlsServer(): net.Server {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    server.on('connection', (socket: Socket) => {
      const flow = new Flow(REVERSE_FRONTEND, socket, this.options.flows);
      socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
      void runFlow(flow, () =>
        this.terminate(flow, socket).catch((err: unknown) => {
          socket.destroy();
          throw err;
        }),
      );
    });
    server.once('close', () => this.close());
    return server;
  }

  /** The `listen.reverse_http` server: cleartext HTTP/1.1. */
  httpServer(): HttpServer {
    const { logger } = this.options;
    const server = createHttpListener(this.options.httpLimits, 'reverse', logger, (socket, error, close) => this.entry.refuseConnection(REVERSE_FRONTEND, socket, error, close));
    const source = this.httpSource();
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.entry.reverse(source, req, res));
    // WebSocket handshakes take the same path as on the other listeners (http/upgrade.ts).
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'upgraded client socket error'));
      serveUpgrade(
        req,
        socket,
        head,
        (r, res, upgrade) => this.entry.reverse(source, r, res, upgrade),
        (res, reason) => this.entry.reverse({ ...source, refusal: reason }, req, res),
      );
    });
    server.on('connect', (req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => undefined);
      const peer = peerAddress(socket);
      const error = new GatewayError('TG_ERR_BAD_REQUEST', 'parse', 'CONNECT is not served by the reverse-proxy listener');
      const flow = this.entry.refuseConnection(REVERSE_FRONTEND, socket, error, 'refused');
      flow.log.info({ client: peer.address, client_port: peer.port, reason: error.message }, 'request refused');
      writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, (req.url ?? '').slice(0, 300));
      // Closed once the answer is out: the flow's record is written when the socket closes.
      socket.destroySoon();
    });
    server.once('close', () => this.close());
    return server;
  }

  /**
   * Reads the `reverse` block again and swaps routes, backends and certificates in together;
   * anything wrong keeps the last good set, with a log line that says what.
   */
  reload(trigger: string): boolean {
    const { logger } = this.options;
    try {
      const next = this.load(this.options.reread());
      this.backends.update(next.router.all);
      this.state = next;
      this.stopWatching();
      this.watchCertificates();
      logger.info({ trigger, routes: next.router.all.length, certificates: next.certificates.certificates.length }, 'reverse proxy routes and certificates reloaded');
      return true;
    } catch (err) {
      logger.error({ trigger, reason: (err as Error).message }, 'reverse proxy reload failed; the previous routes and certificates stay in force');
      return false;
    }
  }

  /** Stops watching files and listening for reloads; closes backend connections (once, for either server). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.stopWatching();
    this.pools.destroy();
  }

  private load(config: ReverseConfig): ReverseState {
    const router = ReverseRouter.compile(config, this.options.sourcePath);
    const { set, warnings } = ServerCertificateSet.load(config.certificates, 'reverse.certificates');
    if (this.options.tlsListener && set.certificates.length === 0) {
      throw new ConfigError([
        { file: this.options.sourcePath, line: null, path: 'reverse.certificates', message: 'listen.reverse needs at least one { cert, key } pair of PEM files; add one or remove listen.reverse' },
      ]);
    }
    for (const warning of warnings) this.options.logger.warn({ reason: warning }, 'reverse proxy certificate');
    return { router, certificates: set, files: config.certificates };
  }

  /** Watches the directories of the certificate and key files in force (rename-safe, see policy/watch.ts). */
  private watchCertificates(): void {
    const byDir = new Map<string, Set<string>>();
    for (const file of this.state.files.flatMap((f) => [f.cert, f.key])) {
      const dir = path.dirname(file);
      byDir.set(dir, (byDir.get(dir) ?? new Set<string>()).add(path.basename(file)));
    }
    const targets = [...byDir.entries()].map(([dir, names]) => ({ dir, names }));
    this.stopWatching = targets.length === 0 ? () => undefined : watchForChanges(targets, (changed) => this.reload(`file change: ${changed}`), this.options.logger);
  }

  private certificateFor(subject: LeafSubject): Promise<{ secureContext: SecureContext }> {
    const name = subject.kind === 'dns' ? subject.name : subject.address;
    const certificate = this.state.certificates.select(name);
    if (!certificate) return Promise.reject(new GatewayError('TG_ERR_CONFIG', 'tls-client', 'reverse.certificates is empty'));
    return Promise.resolve({ secureContext: certificate.secureContext });
  }

  private async terminate(flow: Flow, socket: Socket): Promise<CloseKind> {
    const peek = await peekClientBytes(socket, Buffer.alloc(0), { timeoutMs: this.options.peekTimeoutMs });
    if (peek.kind !== 'tls') {
      flow.peeked(peek.kind === 'opaque' ? peek.firstBytes : peek.kind === 'invalid-tls' ? 'tls' : 'none');
      if (peek.kind === 'closed') return 'client-closed';
      const reason =
        peek.kind === 'timeout'
          ? `no ClientHello within ${this.options.peekTimeoutMs} ms`
          : peek.kind === 'opaque'
            ? 'the client did not start TLS (plain HTTP goes to listen.reverse_http)'
            : `invalid TLS ClientHello: ${peek.reason}`;
      flow.failed(new GatewayError(peek.kind === 'timeout' ? 'TG_ERR_CLIENT_TIMEOUT' : 'TG_ERR_BAD_REQUEST', 'parse', reason));
      flow.log.info({ reason }, 'reverse TLS connection refused');
      socket.destroy();
      return peek.kind === 'timeout' ? 'timeout' : 'refused';
    }
    flow.peeked('tls', peek.hello);
    const sni = peek.hello.sni === null ? null : normaliseHost(peek.hello.sni);
    const local: Host = net.isIPv6(socket.localAddress ?? '') ? { kind: 'ipv6', address: socket.localAddress! } : { kind: 'ipv4', address: socket.localAddress ?? '0.0.0.0' };
    flow.learnedTarget({ host: sni?.ok ? sni.host : local, port: socket.localPort ?? 443 });
    socket.unshift(peek.bytes);
    return this.inspector.inspect(flow, socket, peek);
  }

  private tlsSource(flow: Flow, tunnel: DecryptedTunnel): ReverseSource {
    return {
      flow,
      frontend: REVERSE_FRONTEND,
      policyFrontend: 'transparent-tls',
      scheme: 'https',
      port: 443,
      clientTls: tunnel.clientTls,
      clientSni: tunnel.clientSni,
      misdirected: (host) => {
        const sni = tunnel.name.kind === 'name' && tunnel.clientSni !== null ? tunnel.name.name : null;
        const name = host.kind === 'name' ? host.name : host.address;
        if (this.state.certificates.coversOnConnection(sni, name)) return null;
        return `this connection was opened for ${sni} and its certificate does not name ${name}; open a connection for ${name}`;
      },
      route: (host, p) => this.state.router.route(host, p),
      routed: (id, backend) => this.noteRoute(id, backend),
    };
  }

  private httpSource(): ReverseSource {
    return {
      frontend: REVERSE_FRONTEND,
      policyFrontend: 'transparent-http',
      scheme: 'http',
      port: 80,
      clientTls: null,
      clientSni: null,
      route: (host, p) => this.state.router.route(host, p),
      routed: (id, backend) => this.noteRoute(id, backend),
    };
  }

  private noteRoute(requestId: string, backend: ReverseBackend | null): void {
    if (backend) this.routes.set(requestId, backend);
    else this.routes.delete(requestId);
  }

  /** Request records of the reverse listeners carry `route` and `backend` (docs/audit.md). */
  private routeAnnotator(sink: RecordWriter): RecordWriter {
    return {
      write: (record) => {
        if (record.type !== 'request') {
          sink.write(record);
          return;
        }
        const backend = this.routes.get(record.request_id) ?? null;
        this.routes.delete(record.request_id);
        sink.write(withReverseRoute(record, backend));
      },
    };
  }
}

/**
 * The entry as the inspect terminal calls it: requests it decrypted on the reverse listener go
 * to HttpEntry.reverse with the connection's facts, never to the forward-proxy tunnel path.
 */
class ReverseEntry extends HttpEntry {
  constructor(
    options: ConstructorParameters<typeof HttpEntry>[0],
    private readonly sourceOf: (tunnel: DecryptedTunnel) => ReverseSource,
  ) {
    super(options);
  }

  override decrypted(tunnel: DecryptedTunnel, req: InboundRequest, res: InboundResponse, upgrade?: UpgradeSocket): void {
    this.reverse(this.sourceOf(tunnel), req, res, upgrade);
  }

  /** An upgrade request with a body (http/upgrade.ts): refused before routing, with its record. */
  override refuseDecrypted(tunnel: DecryptedTunnel, req: IncomingMessage, res: ServerResponse, reason: string): void {
    this.reverse({ ...this.sourceOf(tunnel), route: () => null, refusal: reason }, req, res);
  }
}
