import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import type { DecryptedTunnel, HttpEntry } from '../http/entry';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import { armHeaderDeadline, createTunnelHttpServer, type TunnelHttpState } from './tunnel-http-server';

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

interface ClearTunnel extends DecryptedTunnel, TunnelHttpState {}

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
    this.server = createTunnelHttpServer(options, (socket) => this.tunnels.get(socket), 'cleartext tunnel');
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
      armHeaderDeadline(client, tunnel, this.options.headerTimeoutMs);
      this.server.emit('connection', client);
      client.resume();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void {
    const tunnel = this.tunnels.get(req.socket);
    if (!tunnel) {
      res.destroy();
      return;
    }
    if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
    res.once('finish', () => armHeaderDeadline(req.socket, tunnel, this.options.headerTimeoutMs));
    this.options.entry.tunnelled(tunnel, req, res, upgrade);
  }
}
