import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Redactor } from '../audit/redact';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import { Flow, type FlowServices } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import type { HttpEntry } from '../http/entry';
import { tooManyHeaders } from '../http/headers';
import { serveUpgrade } from '../http/upgrade';
import { authenticateProxyRequest, type ProxyAuthSettings } from '../identity/proxy-authentication';
import type { Logger } from '../logging/logger';
import { noteLimitBreach } from '../observability/limit-breach';
import { parseConnectAuthority } from '../protocol/target';
import { runTunnel, type TunnelDeps } from '../tunnel/tunnel';
import { type HttpListenerLimits, createHttpListener } from './http-listener';

export interface ExplicitFrontendOptions extends HttpListenerLimits {
  /** When set, every request and CONNECT must carry valid `Proxy-Authorization: Basic`. */
  readonly auth: ProxyAuthSettings | null;
}

/** What the explicit front-end hands requests and tunnels to. */
export interface ExplicitServices {
  readonly entry: HttpEntry;
  readonly tunnels: TunnelDeps;
  readonly flows: FlowServices;
  readonly redactor: Redactor;
}

const CONNECTION_ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n');

/**
 * The explicit proxy front-end: absolute-form HTTP requests go to the one HTTP entry, CONNECT
 * tunnels to the tunnel pipeline. It only learns the target (and the user); everything after
 * is shared with the other front-ends.
 */
export function createExplicitServer(options: ExplicitFrontendOptions, services: ExplicitServices, logger: Logger): Server {
  const { entry } = services;
  const server = createHttpListener(options, 'explicit', logger, (socket, error, close) => entry.refuseConnection('explicit-http', socket, error, close));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => entry.plain('explicit-http', req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'upgraded client socket error'));
    serveUpgrade(
      req,
      socket,
      head,
      (r, res, upgrade) => entry.plain('explicit-http', r, res, upgrade),
      (res, reason) => entry.refusePlain('explicit-http', req, res, reason),
    );
  });
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const flow = new Flow('explicit-connect', socket, services.flows);
    // Attached at once so no socket error can go unhandled between stages.
    socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
    void runFlow(flow, () => connect(flow, req, socket, head, options, services));
  });
  return server;
}

/** One CONNECT: check it, authenticate it, then run the tunnel. Resolves with how it ended. */
async function connect(
  flow: Flow,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  options: ExplicitFrontendOptions,
  services: ExplicitServices,
): Promise<'refused' | Awaited<ReturnType<typeof runTunnel>>> {
  // The authority as logged and shown: userinfo a client put there never reaches a log.
  const authority = services.redactor.authority((req.url ?? '').slice(0, 300));
  const refuse = (error: GatewayError): 'refused' => {
    flow.failed(error);
    writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, authority);
    return 'refused';
  };
  if (tooManyHeaders(req, options.maxHeaders)) {
    noteLimitBreach(flow.log, 'http.max_headers', flow.frontend, { client: flow.clientAddress, max: options.maxHeaders });
    return refuse(new GatewayError('TG_ERR_HEADERS_TOO_LARGE', 'parse', `more than ${options.maxHeaders} header fields (http.max_headers)`));
  }
  const parsed = parseConnectAuthority(req.url ?? '');
  if (!parsed.ok) {
    flow.log.info({ authority, reason: parsed.reason }, 'CONNECT refused: bad target');
    return refuse(new GatewayError('TG_ERR_BAD_TARGET', 'parse', parsed.reason));
  }
  flow.learnedTarget(parsed.target);
  if (options.auth) {
    // Nothing may be read (or relayed) while the credentials are being checked.
    socket.pause();
    const result = await authenticateProxyRequest(options.auth, req.rawHeaders, flow.clientAddress, flow.frontend);
    if (!result.ok) {
      flow.log[result.missing ? 'debug' : 'info']({ code: result.error.code, reason: result.error.message, target: authority }, 'CONNECT refused: proxy authentication');
      // Reading again (and discarding) lets the client's FIN close the socket after the reply.
      socket.resume();
      return refuse(result.error);
    }
    flow.authenticated(result.principal);
    // Left paused: the peek resumes it with its own listener attached, so no byte is lost.
  }
  return runTunnel(
    flow,
    socket,
    head,
    {
      accept: () => socket.write(CONNECTION_ESTABLISHED),
      refuse: (refusal) => writeRawHttpRefusal(socket, refusal, flow.id, authority),
    },
    services.tunnels,
  );
}
