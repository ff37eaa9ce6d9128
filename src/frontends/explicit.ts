import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/rejection';
import { Flow } from '../flow/flow';
import { type PlainHttpServices, checkHostAgreement, checkHttp1Version, checkRequestFraming, flowForConnection, refuseBeforeDecision, refuseMalformed, servePlainRequest } from '../http/serve-request';
import { type UpgradeSocket, serveUpgrade } from '../http/upgrade';
import { authenticateProxyRequest, type ProxyAuthSettings } from '../identity/proxy-authentication';
import { tooManyHeaders } from '../http/headers';
import { parseConnectAuthority, parseHostAndOptionalPort } from '../protocol/authority';
import { finishFlow, runTunnel, type TunnelServices } from '../tunnel/run-tunnel';
import type { Logger } from '../logging/logger';
import { noteLimitBreach } from '../observability/limit-breach';
import { createHttpListener } from './http-listener';

export interface ExplicitFrontendOptions {
  readonly maxHeaderBytes: number;
  readonly headerTimeoutMs: number;
  readonly maxHeaders: number;
  readonly clientIdleTimeoutMs: number;
  /** When set, every request and CONNECT must carry valid `Proxy-Authorization: Basic`. */
  readonly auth: ProxyAuthSettings | null;
}

/** Whether a request announces a body (one an unauthenticated client should not make us read). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

const CONNECTION_ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n');

/** Splits an absolute-form request target (RFC 9112 3.2.2) into authority and origin-form path. */
export function splitAbsoluteForm(url: string): { scheme: string; authority: string; path: string } | null {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(url);
  if (!match) return null;
  const path = match[3] === '' ? '/' : match[3]!;
  return { scheme: match[1]!.toLowerCase(), authority: match[2]!, path: path.startsWith('?') ? `/${path}` : path };
}

/**
 * The explicit proxy front-end: absolute-form HTTP requests and CONNECT tunnels. It learns the
 * target, then hands requests to the plain-HTTP path and tunnels to the tunnel pipeline.
 */
export function createExplicitServer(options: ExplicitFrontendOptions, plain: PlainHttpServices, tunnels: TunnelServices, logger: Logger): Server {
  const server = createHttpListener(options, 'explicit', logger);
  // Node keeps the first maxHeadersCount fields and silently drops the rest; one more than the
  // limit lets a request over it be recognised and refused instead of forwarded truncated.
  server.maxHeadersCount = options.maxHeaders + 1;

  const onRequest = (req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void => {
    const flow = flowForConnection(req.socket, 'explicit-http', plain);
    flow.requests++;
    if (tooManyHeaders(req, options.maxHeaders)) {
      noteLimitBreach(flow.log, 'http.max_headers', flow.frontend, { client: flow.clientAddress, max: options.maxHeaders });
      const error = new GatewayError('TG_ERR_HEADERS_TOO_LARGE', 'parse', `more than ${options.maxHeaders} header fields (http.max_headers)`);
      refuseMalformed(plain, flow, req, res, error.message, null, error);
      return;
    }
    const absolute = splitAbsoluteForm(req.url ?? '');
    if (!absolute) {
      refuseMalformed(plain, flow, req, res, 'tollgate is a proxy: send absolute-form requests (http://host/path) or CONNECT', null);
      return;
    }
    if (absolute.scheme !== 'http') {
      refuseMalformed(plain, flow, req, res, `scheme "${absolute.scheme}" is not proxied as plain HTTP; use CONNECT for https`, null);
      return;
    }
    const parsed = parseHostAndOptionalPort(absolute.authority, 80);
    if (!parsed.ok) {
      refuseMalformed(plain, flow, req, res, `invalid request target: ${parsed.reason}`, null);
      return;
    }
    const problem = checkHttp1Version(req) ?? checkRequestFraming(req) ?? checkHostAgreement(req, parsed.target, 80);
    if (problem) {
      refuseMalformed(plain, flow, req, res, problem, parsed.target);
      return;
    }
    flow.target = parsed.target;
    const request = { flow, principal: null, target: parsed.target, path: absolute.path, ...(upgrade ? { upgrade } : {}) };
    if (!options.auth) {
      servePlainRequest(plain, request, req, res);
      return;
    }
    void authenticateProxyRequest(options.auth, req.rawHeaders, flow.clientAddress, flow.frontend).then((result) => {
      if (result.ok) {
        // Each request on a connection authenticates on its own and is decided and recorded as
        // that principal; the connection record names the last one that succeeded.
        flow.principal = result.principal;
        servePlainRequest(plain, { ...request, principal: result.principal }, req, res);
        return;
      }
      // A request without credentials is how every browser starts; only failures are news.
      flow.log[result.missing ? 'debug' : 'info']({ code: result.error.code, reason: result.error.message }, 'proxy authentication refused');
      refuseBeforeDecision(plain, flow, req, res, { kind: 'error', error: result.error }, parsed.target, hasBody(req));
    });
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'upgraded client socket error'));
    serveUpgrade(req, socket, head, onRequest, (res, reason) => refuseMalformed(plain, flowForConnection(req.socket, 'explicit-http', plain), req, res, reason, null));
  });

  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const flow = new Flow('explicit-connect', socket, logger);
    // Attached at once so no socket error can go unhandled between stages.
    socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
    const authority = req.url ?? '';
    if (tooManyHeaders(req, options.maxHeaders)) {
      noteLimitBreach(flow.log, 'http.max_headers', flow.frontend, { client: flow.clientAddress, max: options.maxHeaders });
      const error = new GatewayError('TG_ERR_HEADERS_TOO_LARGE', 'parse', `more than ${options.maxHeaders} header fields (http.max_headers)`);
      flow.error = error;
      writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, authority.slice(0, 300));
      finishFlow(flow, 'refused', tunnels.audit);
      return;
    }
    const parsed = parseConnectAuthority(authority);
    if (!parsed.ok) {
      const error = new GatewayError('TG_ERR_BAD_TARGET', 'parse', parsed.reason);
      flow.error = error;
      flow.log.info({ authority: plain.redactor.authority(authority.slice(0, 300)), reason: parsed.reason }, 'CONNECT refused: bad target');
      writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, authority.slice(0, 300));
      finishFlow(flow, 'refused', tunnels.audit);
      return;
    }
    flow.target = parsed.target;
    if (options.auth) {
      // Nothing may be read (or relayed) while the credentials are being checked.
      socket.pause();
      void authenticateProxyRequest(options.auth, req.rawHeaders, flow.clientAddress, flow.frontend).then((result) => {
        if (!result.ok) {
          flow.error = result.error;
          flow.log[result.missing ? 'debug' : 'info']({ code: result.error.code, reason: result.error.message, target: plain.redactor.authority(authority.slice(0, 300)) }, 'CONNECT refused: proxy authentication');
          // Reading again (and discarding) lets the client's FIN close the socket after the reply.
          socket.resume();
          writeRawHttpRefusal(socket, { kind: 'error', error: result.error }, flow.id, authority);
          finishFlow(flow, 'refused', tunnels.audit);
          return;
        }
        flow.principal = result.principal;
        // Left paused: the peek resumes it with its own listener attached, so no byte is lost.
        openTunnel(flow, socket, head, authority, tunnels);
      });
      return;
    }
    openTunnel(flow, socket, head, authority, tunnels);
  });

  return server;
}

function openTunnel(flow: Flow, socket: Socket, head: Buffer, authority: string, tunnels: TunnelServices): void {
  void runTunnel(
    flow,
    socket,
    head,
    {
      accept: () => socket.write(CONNECTION_ESTABLISHED),
      refuse: (refusal) => writeRawHttpRefusal(socket, refusal, flow.id, authority),
    },
    tunnels,
  );
}
