import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { rawHeaderValue } from './headers';

/** The client side of an HTTP/1.1 Upgrade: the raw socket and the bytes read past the head. */
export interface UpgradeSocket {
  readonly socket: Socket;
  readonly head: Buffer;
}

/** `Upgrade: websocket` (RFC 6455 4.1; the token is case-insensitive, possibly in a list). */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = rawHeaderValue(req.rawHeaders, 'upgrade');
  if (upgrade === undefined || req.method !== 'GET') return false;
  return upgrade.split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}

/** Whether the request head announces a body (which Node leaves unparsed on an upgrade). */
function announcesBody(req: IncomingMessage): boolean {
  const length = rawHeaderValue(req.rawHeaders, 'content-length');
  return rawHeaderValue(req.rawHeaders, 'transfer-encoding') !== undefined || (length !== undefined && length.trim() !== '0');
}

/**
 * A ServerResponse on the socket of an `upgrade` event. Node hands upgrade requests over as a
 * raw socket with no response object; this gives them one, so refusals, block pages and
 * declined upgrades go through the same code (and the same audit) as every other request.
 * The connection closes after the response: the HTTP parser has already let go of the socket.
 */
function detachedResponse(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new http.ServerResponse(req);
  res.assignSocket(socket);
  res.shouldKeepAlive = false;
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  res.once('close', () => socket.destroySoon());
  return res;
}

/**
 * The `upgrade` event of a server: a WebSocket handshake goes to `onRequest` with its socket,
 * to be decided and forwarded like any request; any other upgrade (h2c, TLS/1.0) is served as
 * an ordinary request without it, which RFC 9110 7.8 allows. Node leaves the body of an
 * upgrade request unparsed, so a non-WebSocket upgrade that announces one is refused.
 */
export function serveUpgrade(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  onRequest: (req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket) => void,
  refuse: (res: ServerResponse, reason: string) => void,
): void {
  const res = detachedResponse(req, socket);
  if (isWebSocketUpgrade(req)) {
    if (announcesBody(req)) {
      refuse(res, 'a WebSocket handshake must not carry a request body');
      return;
    }
    onRequest(req, res, { socket, head });
    return;
  }
  if (announcesBody(req) || head.length > 0) {
    refuse(res, `Upgrade "${rawHeaderValue(req.rawHeaders, 'upgrade') ?? ''}" with a request body is not supported`);
    return;
  }
  onRequest(req, res);
}
