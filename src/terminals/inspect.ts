import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import type { TlsSummary } from '../audit/record-fields';
import type { WarmupRequest } from '../egress/warmup';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import { TLS_ALERT_ACCESS_DENIED } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import type { DecryptedTunnel, HttpEntry } from '../http/entry';
import type { InboundRequest, InboundResponse } from '../http/inbound';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import { mayAutoSplice } from '../policy/decide';
import type { TlsPeek } from '../protocol/first-bytes';
import { type Host, normaliseHost } from '../protocol/host';
import type { LeafSubject } from '../tls/mint-leaf';
import { noteLimitBreach } from '../observability/limit-breach';
import { type DecryptedRoute, type DecryptedStreams, isHttpAlpn, offersOnlyNonHttp } from './decrypted-stream';
import { type H2HeaderTimeout, watchH2HeaderDeadline } from './h2-header-deadline';
import { armHeaderDeadline, createTunnelHttpServer, type TunnelHttpState } from './tunnel-http-server';
import type { PinningMonitor, PinningSignal } from './pinning-monitor';

/** The inspect terminal: terminates the client's TLS and runs the HTTP inside. */
export interface Inspector {
  inspect(flow: Flow, client: Socket, peek: TlsPeek): Promise<CloseKind>;
}

/** Where the certificate shown to a client comes from: minted leaves (LeafCache), or the reverse listener's own. */
export interface ClientCertificates {
  get(subject: LeafSubject): Promise<{ readonly secureContext: SecureContext }>;
}

/** What the terminal asks of the origin side before the client's handshake (egress/warmup.ts implements it). */
export interface OriginPreparation {
  /** Whether to offer h2 to the client; may open the origin connection meanwhile. */
  prepare(request: WarmupRequest): Promise<boolean>;
}

export interface InspectorOptions {
  readonly leaves: ClientCertificates;
  /** Where decrypted requests go: the one HTTP entry. */
  readonly entry: HttpEntry;
  readonly handshakeTimeoutMs: number;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly pinning: PinningMonitor | null;
  /**
   * Gets the origin side ready (ALPN answer, first connection) while the certificate is minted
   * and the client's handshake runs; null = never offer h2 to clients, connect on demand.
   */
  readonly warmup: OriginPreparation | null;
  /** Decrypted sessions that are not HTTP (inspect_non_http); null = everything is served as HTTP. */
  readonly streams?: DecryptedStreams | null;
}

/** TLS alerts with which a client says it does not accept the certificate it was shown. */
const REJECTION_ALERTS: Readonly<Record<string, PinningSignal>> = {
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'alert-unknown-ca',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'alert-bad-certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'alert-certificate-unknown',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'alert-unsupported-certificate',
};

/**
 * A handshake that ends before Finished without an alert (in Node: 'close', or an ECONNRESET
 * error, before 'secure', after the gateway sent its certificate flight) is reported as
 * `handshake-aborted` but never counted as a rejection. Some pinned apps end this way (Node's
 * own TLS client verifies after the handshake and resets the connection under TLS 1.3), but so
 * do port scanners, cancelled preconnections, the losing connection of a happy-eyeballs race,
 * crashes and network drops, and it costs nothing: a ClientHello and a close. Counting it would
 * let any three addresses switch inspection off by connecting and hanging up. A rejection alert
 * is no harder to send on purpose, but benign clients send one only when they do reject the
 * certificate (RFC 8446 6.2); deliberate alerts are left to min_clients and to the rule's opt-in
 * (policy/decide.ts mayAutoSplice). A completed handshake never counts: the client accepted the
 * certificate; apps that check pins after the handshake (OkHttp, Node under TLS 1.2) are not
 * told apart from an unused connection and need a splice rule.
 */
const ABORT_WITHOUT_ALERT = new Set(['ECONNRESET']);

/** What the HTTP servers need to know about the tunnel a decrypted request came through. */
/** `closeAs` also covers a client found gone under a stuck HTTP/2 write (watchStuckWrites). */
interface Tunnel extends DecryptedTunnel, TunnelHttpState {
  clientTls: TlsSummary | null;
  /** The client's TLS socket, and the TCP socket under it: destroyed outright when an HTTP/2 session ends. */
  readonly tls: TLSSocket;
  readonly raw: Socket;
  /** A decrypted session routed by decrypted-stream.ts; the flow closes when it is done. */
  stream: Promise<DecryptedRoute> | null;
}

/**
 * ALPN offered to clients: h2 only when the client offered it and the origin speaks it too
 * (see OriginWarmup), so a client never gets a protocol the origin would not have given it;
 * http/1.1 alone makes h2 clients fall back cleanly. http/1.0 is there for clients that offer
 * only it (curl -0): Node ends a handshake with no common protocol with a fatal alert.
 */
const CLIENT_ALPN_H1 = ['http/1.1', 'http/1.0'];
const CLIENT_ALPN_H2 = ['h2', 'http/1.1', 'http/1.0'];

/**
 * Write buffering on decrypted client sockets before a piped body pauses its source. Node's
 * 16 KiB default equals one TLS record, so a download paused and resumed the origin socket for
 * nearly every record (bench (a): see bench/README.md). A threshold, not an allocation: idle
 * tunnels cost nothing more.
 */
const CLIENT_TLS_HIGH_WATER_MARK = 256 * 1024;

/** Streams one HTTP/2 client may have open at once (what browsers and common servers use). */
const H2_MAX_CONCURRENT_STREAMS = 100;

/**
 * How long an HTTP/2 session that is ending (GOAWAY sent, destroyed) may take to flush its last
 * frames before the client's sockets are destroyed regardless. Node closes the socket of a
 * destroyed session only once its write in progress completes, and a write to a client that is
 * gone or has stopped reading may never complete.
 */
const H2_CLOSE_GRACE_MS = 1000;

/** How often an HTTP/2 session's client socket is checked for a write that can never complete. */
const H2_STUCK_WRITE_CHECK_MS = 1000;

/**
 * Bytes a socket's native handle has accepted and not yet written below it (TLS: to the TCP
 * socket; TCP: to the kernel). Node's own write accounting (net.js reads it too); writes made by
 * an HTTP/2 session go to the handle directly, so `writableLength` never sees them.
 */
function handleWriteQueue(socket: Socket): number {
  return (socket as Socket & { _handle?: { writeQueueSize?: number } | null })._handle?.writeQueueSize ?? 0;
}

/**
 * Watches the client socket of an HTTP/2 session for a write that can never complete, and calls
 * `onStuck` once when it finds one. Node's HTTP/2 session stops reading its socket while a write
 * is in progress, and when the client's TCP connection fails under a write (a client killed or
 * reset while a download was back-pressured), the error reaches the TCP layer but, on Node 20,
 * not always the TLS layer above it: the TLS handle then holds the session's write forever
 * (its write queue above 0) while the TCP handle has nothing queued and no byte moves (measured:
 * 16 KiB held in TLS, 0 in TCP, bytesWritten frozen, for as long as the session lived).
 * Nothing reads or writes the connection any more, so neither the reset nor a FIN is ever
 * seen, and no event fires. In every live state, TLS output pending means TCP output
 * pending too (the TLS layer writes on as soon as a TCP write completes), so that state held over
 * two checks means the client is gone.
 */
function watchStuckWrites(tlsSocket: TLSSocket, raw: Socket, onStuck: () => void): () => void {
  let lastWritten = raw.bytesWritten;
  let stuckChecks = 0;
  const timer = setInterval(() => {
    if (raw.destroyed || tlsSocket.destroyed) {
      clearInterval(timer);
      return;
    }
    const written = raw.bytesWritten;
    const stuck = handleWriteQueue(tlsSocket) > 0 && handleWriteQueue(raw) === 0 && written === lastWritten;
    lastWritten = written;
    stuckChecks = stuck ? stuckChecks + 1 : 0;
    if (stuckChecks < 2) return;
    clearInterval(timer);
    onStuck();
  }, H2_STUCK_WRITE_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The inspect terminal: terminates the client's TLS with a certificate minted for the name it
 * asked for, then serves the HTTP inside through the one forwarding path (which opens its own,
 * verified TLS connection to the origin).
 */
export class TlsInspector implements Inspector {
  private readonly server: http.Server;
  private readonly tunnels = new WeakMap<Socket, Tunnel>();
  /** HTTP/2 client sessions: one server, sessions handed to it like sockets to `server`. */
  private readonly h2Server: http2.Http2Server;
  private readonly h2Tunnels = new WeakMap<http2.ServerHttp2Session, Tunnel>();
  /** Sessions being destroyed, whose client sockets are destroyed after H2_CLOSE_GRACE_MS at the latest. */
  private readonly h2Ending = new WeakSet<http2.ServerHttp2Session>();
  /** The tunnel whose socket is being handed to h2Server ('session' fires synchronously). */
  private handingOver: Tunnel | null = null;

  constructor(private readonly options: InspectorOptions) {
    this.server = createTunnelHttpServer(options, (socket) => this.tunnels.get(socket), 'decrypted');
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    // The same header budget as HTTP/1.1; Node's default of unlimited concurrent streams per
    // session would let one client open any number of origin requests at once.
    this.h2Server = http2.createServer({ maxSessionMemory: 10, settings: { maxHeaderListSize: options.maxHeaderBytes, maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS } });
    // Idle sessions end (limits.client_idle_timeout); streams end with them.
    this.h2Server.setTimeout(options.idleTimeoutMs);
    this.h2Server.on('timeout', (session: http2.ServerHttp2Session) => {
      const tunnel = this.h2Tunnels.get(session);
      if (tunnel) {
        noteLimitBreach(tunnel.flow.log, 'limits.client_idle_timeout', tunnel.flow.frontend, { limit_ms: options.idleTimeoutMs });
        tunnel.closeAs ??= 'timeout';
      }
      this.endH2Session(session, tunnel);
    });
    this.h2Server.on('session', (session: http2.ServerHttp2Session) => {
      const tunnel = this.handingOver;
      if (tunnel) {
        this.h2Tunnels.set(session, tunnel);
        watchH2HeaderDeadline(session, options.headerTimeoutMs, (timeout) => this.expireH2Session(session, tunnel, timeout));
        this.bindH2Session(session, tunnel);
      }
      // Protocol errors end the session (GOAWAY) or the stream (RST_STREAM), never the process.
      session.on('error', (err: NodeJS.ErrnoException) => {
        tunnel?.flow.log.info({ code: err.code, reason: err.message }, 'HTTP/2 session error');
        this.endH2Session(session, tunnel);
      });
    });
    this.h2Server.on('sessionError', () => undefined);
    this.h2Server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      req.stream.on('error', (err: NodeJS.ErrnoException) => this.h2Tunnels.get(req.stream.session as http2.ServerHttp2Session)?.flow.log.debug({ code: err.code }, 'HTTP/2 stream error'));
      this.onRequest(req, res);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      serveUpgrade(
        req,
        socket,
        head,
        (r, res, upgrade) => this.onRequest(r, res, upgrade),
        (res, reason) => this.refuseMalformed(req, res, reason),
      );
    });
  }

  async inspect(flow: Flow, client: Socket, peek: TlsPeek): Promise<CloseKind> {
    const target = flow.target!;
    const sni = peek.hello.sni === null ? null : normaliseHost(peek.hello.sni);
    const name: Host = sni?.ok ? sni.host : target.host;
    const subject: LeafSubject = name.kind === 'name' ? { kind: 'dns', name: name.name } : { kind: 'ip', address: name.address };
    const servername = name.kind === 'name' ? name.name : null;
    // The origin side gets ready (and, for a client offering h2, answers whether the origin
    // speaks it) while the certificate is minted: one wait for both, not one after the other.
    const verifyCertificate = flow.decision?.rule?.upstreamInsecure !== true;
    const clientOffersH2 = peek.hello.alpn?.includes('h2') ?? false;
    const h2Answer = this.options.warmup?.prepare({ target, servername, verifyCertificate, clientOffersH2 }) ?? Promise.resolve(false);
    let secureContext: tls.SecureContext;
    try {
      secureContext = (await this.options.leaves.get(subject)).secureContext;
    } catch (err) {
      const error = asGatewayError(err, 'tls-client');
      flow.failed(error);
      flow.log.error({ err: error }, 'cannot mint a certificate; closing the tunnel');
      client.destroy();
      return 'error';
    }
    const offerH2 = clientOffersH2 && (await h2Answer);
    // A client offering only protocols that are not HTTP (imap, postgresql...) gets the one the
    // origin picks from its own offer: Node ends a handshake without a common protocol with a
    // fatal alert, so the answer must be known before the client's handshake.
    let streamOrigin: { socket: TLSSocket; address: string } | null = null;
    let clientAlpn: string[] | null = offerH2 ? CLIENT_ALPN_H2 : CLIENT_ALPN_H1;
    const streams = this.options.streams ?? null;
    if (streams && offersOnlyNonHttp(peek.hello.alpn)) {
      if ((flow.decision?.rule?.inspectNonHttp ?? 'relay') === 'deny') {
        const reason = `the client offers only ${peek.hello.alpn!.join(', ')} (not HTTP), and the rule does not allow that (inspect_non_http: deny)`;
        flow.decided({ ...flow.decision!, action: 'deny', reason }, true);
        flow.log.info({ reason }, 'decrypted stream refused');
        client.end(TLS_ALERT_ACCESS_DENIED);
        setTimeout(() => client.destroy(), 1000).unref();
        return 'refused';
      }
      try {
        streamOrigin = await streams.openForAlpn(flow, servername, peek.hello.alpn!);
        flow.connected(streamOrigin.address);
      } catch (err) {
        const error = asGatewayError(err, 'connect');
        flow.failed(error);
        flow.log.info({ code: error.code, reason: error.message }, 'cannot open the origin of a decrypted stream; closing the tunnel');
        client.destroy();
        return 'error';
      }
      const picked = streamOrigin.socket.alpnProtocol;
      clientAlpn = typeof picked === 'string' ? [picked] : null;
    }
    // The HTTP server's noDelay applies only to sockets it accepts itself, not to this one: without
    // it, small responses wait for the client's delayed ACK (Nagle).
    client.setNoDelay(true);
    // highWaterMark is honoured by TLSSocket (passed on to its net.Socket) but missing from @types/node.
    const socketOptions: tls.TLSSocketOptions & { highWaterMark: number } = {
      isServer: true,
      secureContext,
      ...(clientAlpn ? { ALPNProtocols: clientAlpn } : {}),
      highWaterMark: CLIENT_TLS_HIGH_WATER_MARK,
    };
    const tlsSocket = new tls.TLSSocket(client, socketOptions);
    const tunnel: Tunnel = {
      flow,
      name,
      // SNI for the origin: what the client sent; a name target without SNI still gets one.
      servername,
      clientSni: peek.hello.sni,
      clientTls: null,
      headerTimer: null,
      closeAs: null,
      tls: tlsSocket,
      raw: client,
      stream: null,
    };
    this.tunnels.set(tlsSocket, tunnel);
    const closed = new Promise<CloseKind>((resolve) => {
      let handshakeDone = false;
      let close: CloseKind = 'client-closed';
      const handshakeTimer = setTimeout(() => {
        close = 'timeout';
        noteLimitBreach(flow.log, 'limits.tls_handshake_timeout', flow.frontend, { limit_ms: this.options.handshakeTimeoutMs });
        tlsSocket.destroy();
      }, this.options.handshakeTimeoutMs);
      tlsSocket.once('secure', () => {
        handshakeDone = true;
        clearTimeout(handshakeTimer);
        tunnel.clientTls = { version: tlsSocket.getProtocol() ?? null, cipher: tlsSocket.getCipher()?.name ?? null };
        if (tlsSocket.alpnProtocol === 'h2') {
          // Node sets secureConnecting = false only for sockets of a tls.Server; an http2 session
          // on a socket still marked connecting waits for 'secureConnect', which a server-side
          // socket never emits, and the session would hang.
          (tlsSocket as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
          this.handingOver = tunnel;
          try {
            this.h2Server.emit('connection', tlsSocket);
          } finally {
            this.handingOver = null;
          }
          return;
        }
        const negotiated = tlsSocket.alpnProtocol ?? false;
        if (streams && (negotiated === false || !isHttpAlpn(negotiated))) {
          tunnel.stream = streams.route(flow, tlsSocket, servername, negotiated, streamOrigin);
          tunnel.stream.then(
            (route) => route.kind === 'http' && this.serveHttp(tlsSocket, tunnel),
            (err: unknown) => {
              flow.failed(asGatewayError(err, 'relay'));
              tlsSocket.destroy();
            },
          );
          return;
        }
        this.serveHttp(tlsSocket, tunnel);
      });
      let handshakeErrorCode: string | null = null;
      // Client sockets are half-open (for splicing), so an EOF does not end them; but a client
      // that has closed its side before Finished can never finish the handshake.
      tlsSocket.once('end', () => {
        if (!handshakeDone) tlsSocket.destroy();
      });
      tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
        if (!handshakeDone) {
          handshakeErrorCode = err.code ?? '';
          // A client rejecting the minted certificate (alert unknown_ca/bad_certificate) ends
          // here: worth a line, it is how certificate pinning shows up.
          flow.failed(new GatewayError('TG_ERR_UPSTREAM_TLS', 'tls-client', `client TLS handshake failed: ${err.message}`));
          flow.log.info({ code: err.code, reason: err.message }, 'client TLS handshake failed');
          close = 'error';
          const signal = REJECTION_ALERTS[err.code ?? ''];
          if (signal) this.notePinning(tunnel, signal);
        } else if (err.code === 'ECONNRESET') close = 'client-reset';
      });
      tlsSocket.once('close', () => {
        clearTimeout(handshakeTimer);
        const aborted = !handshakeDone && close !== 'timeout' && (handshakeErrorCode === null || ABORT_WITHOUT_ALERT.has(handshakeErrorCode));
        if (aborted && client.bytesWritten > 0) this.notePinning(tunnel, 'handshake-aborted');
        if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
        flow.transferred(client.bytesRead, client.bytesWritten);
        resolve(close);
      });
    });
    // The socket's close says only that it closed; a deadline that ended the session says why.
    const kind = await closed;
    if (tunnel.closeAs) return tunnel.closeAs;
    // A relayed stream records its facts once both sides are done; its end is the flow's.
    const route = tunnel.stream ? await tunnel.stream.catch(() => null) : null;
    if (streamOrigin && !tunnel.stream) streamOrigin.socket.destroy();
    return route?.kind === 'done' ? route.close : kind;
  }

  private serveHttp(tlsSocket: TLSSocket, tunnel: Tunnel): void {
    armHeaderDeadline(tlsSocket, tunnel, this.options.headerTimeoutMs);
    this.server.emit('connection', tlsSocket);
    // A session whose first bytes were peeked (no ALPN) was left paused, and a 'data' listener
    // does not restart a stream paused explicitly.
    tlsSocket.resume();
  }

  private notePinning(tunnel: Tunnel, signal: PinningSignal): void {
    if (!this.options.pinning || tunnel.name.kind !== 'name') return;
    const { flow } = tunnel;
    // The name recorded is the one the flow was inspected as, and decide() made its rule the
    // flow's rule (a different target name is refused as fronting): that rule says whether
    // the name may be auto-spliced.
    this.options.pinning.record(tunnel.name.name, flow.clientAddress, signal, mayAutoSplice(flow.decision?.rule ?? null));
  }

  /**
   * Ties the flow to an HTTP/2 session it was handed to: the flow ends when the session does or
   * the client goes away, whatever state the session's writes are in.
   */
  private bindH2Session(session: http2.ServerHttp2Session, tunnel: Tunnel): void {
    // session.socket is a proxy that refuses listeners: the tunnel's own sockets are used.
    const { tls: tlsSocket, raw } = tunnel;
    // Client sockets are half-open (for splicing): a client's FIN (after close_notify, when curl
    // or a browser is done) would otherwise leave the session open until
    // limits.client_idle_timeout, holding a connection slot. The client can send nothing more,
    // not even WINDOW_UPDATE: no new streams (GOAWAY), and the socket goes once the session is done.
    tlsSocket.on('end', () => this.endH2Session(session, tunnel, true));
    // A client reset (or a socket destroyed under the session) ends it at once.
    raw.once('close', () => this.endH2Session(session, tunnel));
    tlsSocket.once('close', () => this.endH2Session(session, tunnel));
    session.once('close', () => this.destroyClient(tunnel));
    const stopWatching = watchStuckWrites(tlsSocket, raw, () => {
      tunnel.flow.log.info({ stalled_bytes: handleWriteQueue(tlsSocket) }, 'HTTP/2 client gone: a write to it can never complete; closing the tunnel');
      tunnel.closeAs ??= 'client-reset';
      this.endH2Session(session, tunnel);
      this.destroyClient(tunnel);
    });
    session.once('close', stopWatching);
  }

  /**
   * Ends an HTTP/2 session, and with it the flow. `graceful` (the client's FIN): a GOAWAY, and
   * the streams still open may finish; Node destroys the session when the last one does. Else
   * the session and its streams are destroyed at once (their responses close, which cancels
   * their origin exchanges), and the client's sockets follow within H2_CLOSE_GRACE_MS even if
   * the session's last write never completes. Either way the sockets are destroyed when the
   * session closes (bindH2Session), and the stuck-write watch stays until then.
   */
  private endH2Session(session: http2.ServerHttp2Session, tunnel: Tunnel | null | undefined, graceful = false): void {
    if (!session.closed && !session.destroyed) session.close();
    if (graceful) return;
    if (!session.destroyed) session.destroy();
    if (!tunnel || this.h2Ending.has(session)) return;
    this.h2Ending.add(session);
    const hard = setTimeout(() => this.destroyClient(tunnel), H2_CLOSE_GRACE_MS);
    hard.unref();
    tunnel.raw.once('close', () => clearTimeout(hard));
  }

  private destroyClient(tunnel: Tunnel): void {
    tunnel.tls.destroy();
    tunnel.raw.destroy();
  }

  /**
   * limits.header_timeout ran out on an HTTP/2 session (see watchH2HeaderDeadline): GOAWAY
   * naming the last stream delivered, so a client knows what it may retry elsewhere, then close.
   */
  private expireH2Session(session: http2.ServerHttp2Session, tunnel: Tunnel, timeout: H2HeaderTimeout): void {
    const ms = this.options.headerTimeoutMs;
    noteLimitBreach(tunnel.flow.log, 'limits.header_timeout', tunnel.flow.frontend, { limit_ms: ms, http2: timeout.reason });
    tunnel.flow.failed(new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', `${timeout.reason} within limits.header_timeout (${ms} ms)`));
    tunnel.closeAs ??= 'timeout';
    // destroy() right after goaway() still writes the GOAWAY frame first (measured on Node 20).
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, timeout.lastStreamId);
    this.endH2Session(session, tunnel, false);
  }

  private refuseMalformed(req: IncomingMessage, res: ServerResponse, reason: string): void {
    const tunnel = this.tunnels.get(req.socket);
    if (!tunnel) {
      res.destroy();
      return;
    }
    this.options.entry.refuseDecrypted(tunnel, req, res, reason);
  }

  private tunnelOf(req: InboundRequest): Tunnel | undefined {
    if (req instanceof http2.Http2ServerRequest) return this.h2Tunnels.get(req.stream.session as http2.ServerHttp2Session);
    return this.tunnels.get(req.socket);
  }

  private onRequest(req: InboundRequest, res: InboundResponse, upgrade?: UpgradeSocket): void {
    const tunnel = this.tunnelOf(req);
    if (!tunnel) {
      (res as { destroy(): void }).destroy();
      return;
    }
    if (!(req instanceof http2.Http2ServerRequest)) {
      if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
      (res as ServerResponse).once('finish', () => armHeaderDeadline(req.socket, tunnel, this.options.headerTimeoutMs));
    }
    this.options.entry.decrypted(tunnel, req, res, upgrade);
  }
}
