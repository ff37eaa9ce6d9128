import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import { peerAddress } from '../flow/flow';
import type { HttpEntry } from '../http/entry';
import { serveUpgrade } from '../http/upgrade';
import type { Logger } from '../logging/logger';
import { type HttpListenerLimits, createHttpListener } from './http-listener';

/**
 * The transparent HTTP front-end, for connections a router redirected from port 80: requests
 * arrive in origin-form and the destination comes from `Host` (http/entry.ts, with
 * `transparent.http_origin_port` when Host names no port). A `Host` with a port is taken at its
 * word and then has to pass policy like any port. Requests take the same path as the explicit
 * proxy's plain HTTP, with the client's own `Host` sent on unchanged.
 */
export function createTransparentHttpServer(limits: HttpListenerLimits, entry: HttpEntry, logger: Logger): Server {
  const server = createHttpListener(limits, 'transparent-http', logger, (socket, error, close) => entry.refuseConnection('transparent-http', socket, error, close));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => entry.plain('transparent-http', req, res));
  // WebSocket handshakes take the same path as on the explicit proxy (http/upgrade.ts).
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'upgraded client socket error'));
    serveUpgrade(
      req,
      socket,
      head,
      (r, res, upgrade) => entry.plain('transparent-http', r, res, upgrade),
      (res, reason) => entry.refusePlain('transparent-http', req, res, reason),
    );
  });
  // CONNECT makes no sense to a listener that stands in for origins.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    const peer = peerAddress(socket);
    const error = new GatewayError('TG_ERR_BAD_REQUEST', 'parse', 'CONNECT is not served by the transparent HTTP listener; use the explicit proxy');
    const flow = entry.refuseConnection('transparent-http', socket, error, 'refused');
    flow.log.info({ client: peer.address, client_port: peer.port, reason: error.message }, 'request refused');
    writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, (req.url ?? '').slice(0, 300));
    // Closed once the answer is out: the flow's record is written when the socket closes.
    socket.destroySoon();
  });
  return server;
}
