import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/rejection';
import { peerAddress } from '../flow/flow';
import { type PlainHttpServices, checkHostAgreement, checkRequestFraming, flowForConnection, refuseMalformed, servePlainRequest } from '../http/serve-request';
import { rawHeaderValue } from '../http/headers';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import type { Logger } from '../logging/logger';
import { parseHostAndOptionalPort } from '../protocol/authority';
import { splitAbsoluteForm } from './explicit';
import { createHttpListener } from './http-listener';

export interface TransparentHttpOptions {
  /** `transparent.http_origin_port`: the port dialled when `Host` names none. */
  readonly originPort: number;
  readonly maxHeaderBytes: number;
  readonly headerTimeoutMs: number;
  readonly clientIdleTimeoutMs: number;
}

/**
 * The transparent HTTP front-end, for connections a router redirected from port 80: requests
 * arrive in origin-form and the destination comes from `Host`. A `Host` without a port means
 * `transparent.http_origin_port`; one with a port is taken at its word and then has to pass
 * policy like any port (allowed_ports.http, or the matching rule's `ports`). Requests then
 * take the same forwarding path as the explicit proxy's plain HTTP, with the client's own
 * `Host` sent on unchanged.
 */
export function createTransparentHttpServer(options: TransparentHttpOptions, plain: PlainHttpServices, logger: Logger): Server {
  const server = createHttpListener(options, 'transparent-http', logger);

  const onRequest = (req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void => {
    const flow = flowForConnection(req.socket, 'transparent-http', plain);
    flow.requests++;
    const url = req.url ?? '';
    let path = url;
    let authority = rawHeaderValue(req.rawHeaders, 'host');
    // RFC 9112 section 3.2.2: a server must accept absolute-form too; its authority then wins
    // and Host has to agree with it.
    const absolute = url.startsWith('/') ? null : splitAbsoluteForm(url);
    if (absolute) {
      if (absolute.scheme !== 'http') {
        refuseMalformed(plain, flow, req, res, `scheme "${absolute.scheme}" is not served by the transparent HTTP listener`, null);
        return;
      }
      authority = absolute.authority;
      path = absolute.path;
    } else if (!url.startsWith('/')) {
      refuseMalformed(plain, flow, req, res, 'the transparent HTTP listener expects origin-form requests (/path)', null);
      return;
    }
    if (authority === undefined || authority.trim() === '') {
      refuseMalformed(plain, flow, req, res, 'no Host header: a transparently redirected request must name its destination in Host', null);
      return;
    }
    const parsed = parseHostAndOptionalPort(authority.trim(), options.originPort);
    if (!parsed.ok) {
      refuseMalformed(plain, flow, req, res, `invalid Host: ${parsed.reason}`, null);
      return;
    }
    const problem = checkRequestFraming(req) ?? (absolute ? checkHostAgreement(req, parsed.target, options.originPort) : null);
    if (problem) {
      refuseMalformed(plain, flow, req, res, problem, parsed.target);
      return;
    }
    flow.target = parsed.target;
    servePlainRequest(plain, { flow, principal: null, target: parsed.target, path, hostHeader: rawHeaderValue(req.rawHeaders, 'host') ?? null, ...(upgrade ? { upgrade } : {}) }, req, res);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res));
  // WebSocket handshakes take the same path as on the explicit proxy (http/upgrade.ts).
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'upgraded client socket error'));
    serveUpgrade(req, socket, head, onRequest, (res, reason) => refuseMalformed(plain, flowForConnection(req.socket, 'transparent-http', plain), req, res, reason, null));
  });

  // CONNECT makes no sense to a listener that stands in for origins.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    const peer = peerAddress(socket);
    const error = new GatewayError('TG_ERR_BAD_REQUEST', 'parse', 'CONNECT is not served by the transparent HTTP listener; use the explicit proxy');
    logger.info({ client: peer.address, client_port: peer.port, reason: error.message }, 'request rejected');
    writeRawHttpRefusal(socket, { kind: 'error', error }, 'none', (req.url ?? '').slice(0, 300));
  });

  return server;
}
