import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import type { DecryptedTunnel, HttpEntry } from '../http/entry';
import type { FramingViolation } from '../http/request-framing-guard';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import { noteLimitBreach } from '../observability/limit-breach';
import { createTunnelHttpServer } from './tunnel-http-server';
import { hostText } from '../protocol/host';

/** Serves cleartext HTTP found inside a tunnel to an inspected destination. */
export interface CleartextTerminal {
  /** The client's peeked bytes are already unshifted; resolves when the tunnel closes. */
  serve(flow: Flow, client: Socket): Promise<CloseKind>;
}

export interface CleartextOptions {
  /** Where the requests go: the one HTTP entry (HttpEntry.tunnelled). */
  readonly entry: HttpEntry;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
}

interface ClearTunnel extends DecryptedTunnel {
  headerTimer: NodeJS.Timeout | null;
  /** How the flow ended when the gateway itself refused or timed it out; null = as the socket closed. */
  closeAs: CloseKind | null;
}

/**
 * `curl --socks5-hostname gw http://name/`, `curl -p -x gw http://name/` and most SOCKS clients
 * send plain HTTP through a tunnel. For an inspected destination those requests are served like
 * explicit-proxy HTTP, through the one HTTP entry, so request rules, DLP, the cache and the
 * per-request audit records apply; the tunnel's target stays the only destination.
 */
export class CleartextHttpTerminal implements CleartextTerminal {
  private readonly server: http.Server;
  private readonly tunnels = new WeakMap<Socket, ClearTunnel>();

  constructor(private readonly options: CleartextOptions) {
    this.server = createTunnelHttpServer(
      options,
      (socket) => this.tunnels.get(socket)?.flow,
      (socket, violation) => this.onFramingViolation(socket, violation),
    );
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      serveUpgrade(
        req,
        socket,
        head,
        (r, res, upgrade) => this.onRequest(r, res, upgrade),
        (res, reason) => {
          this.tunnels.get(socket)?.flow.log.info({ reason }, 'cleartext tunnel request refused');
          writeRawHttpRefusal(socket, { kind: 'error', error: new GatewayError('TG_ERR_BAD_REQUEST', 'parse', reason) }, 'none', 'unknown');
          res.destroy();
        },
      );
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      this.refuseUnparsed(socket, tooLarge, tooLarge ? `request headers exceed ${options.maxHeaderBytes} bytes` : `malformed request: ${err.reason ?? err.message} (${err.code ?? ''})`);
    });
  }

  serve(flow: Flow, client: Socket): Promise<CloseKind> {
    const target = flow.target!;
    const tunnel: ClearTunnel = { flow, name: target.host, servername: null, clientSni: null, clientTls: null, headerTimer: null, closeAs: null };
    this.tunnels.set(client, tunnel);
    client.setNoDelay(true);
    return new Promise((resolve) => {
      let close: CloseKind = 'client-closed';
      client.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET') close = 'client-reset';
      });
      client.once('close', () => {
        if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
        flow.transferred(client.bytesRead, client.bytesWritten);
        resolve(tunnel.closeAs ?? close);
      });
      this.armHeaderTimer(client, tunnel);
      this.server.emit('connection', client);
      client.resume();
    });
  }

  private armHeaderTimer(socket: Socket, tunnel: ClearTunnel): void {
    if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
    tunnel.headerTimer = setTimeout(() => {
      noteLimitBreach(tunnel.flow.log, 'limits.header_timeout', tunnel.flow.frontend, { limit_ms: this.options.headerTimeoutMs });
      const error = new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', 'the client did not send its request headers in time');
      // The connection record says what happened: no request record exists for it.
      tunnel.flow.failed(error);
      tunnel.closeAs ??= 'timeout';
      writeRawHttpRefusal(socket, { kind: 'error', error }, tunnel.flow.id, hostText(tunnel.name));
      socket.destroySoon();
    }, this.options.headerTimeoutMs);
    tunnel.headerTimer.unref();
  }

  private onFramingViolation(socket: Socket, violation: FramingViolation): void {
    this.refuseUnparsed(socket, violation.tooLarge, violation.tooLarge ? `request headers exceed ${this.options.maxHeaderBytes} bytes` : `malformed request: ${violation.reason}`);
  }

  private refuseUnparsed(socket: Socket, tooLarge: boolean, reason: string): void {
    const tunnel = this.tunnels.get(socket);
    const error = new GatewayError(tooLarge ? 'TG_ERR_HEADERS_TOO_LARGE' : 'TG_ERR_BAD_REQUEST', 'parse', reason);
    if (tooLarge && tunnel) noteLimitBreach(tunnel.flow.log, 'http.max_header_size', tunnel.flow.frontend);
    tunnel?.flow.log.info({ code: error.code, reason }, 'cleartext tunnel request refused by the HTTP parser');
    if (tunnel) {
      tunnel.flow.failed(error);
      tunnel.closeAs ??= 'refused';
    }
    writeRawHttpRefusal(socket, { kind: 'error', error }, tunnel?.flow.id ?? 'none', tunnel ? hostText(tunnel.name) : 'unknown');
    socket.destroySoon();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void {
    const tunnel = this.tunnels.get(req.socket);
    if (!tunnel) {
      res.destroy();
      return;
    }
    if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
    res.once('finish', () => this.armHeaderTimer(req.socket, tunnel));
    this.options.entry.tunnelled(tunnel, req, res, upgrade);
  }
}
