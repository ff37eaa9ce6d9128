import http from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import { guardRequestFraming } from '../http/request-framing-guard';
import { noteLimitBreach } from '../observability/limit-breach';
import { type Host, hostText } from '../protocol/host';

export interface TunnelHttpServerOptions {
  readonly idleTimeoutMs: number;
  readonly headerTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
}

/** What a terminal keeps per tunnel that the shared refusals and header deadline use. */
export interface TunnelHttpState {
  readonly flow: Flow;
  /** The tunnel's destination, as refusal pages name it. */
  readonly name: Host;
  headerTimer: NodeJS.Timeout | null;
  /** How the flow ended when the gateway refused or timed it out; null = as the socket closed. */
  closeAs: CloseKind | null;
}

/**
 * The HTTP/1.1 server a terminal hands the client side of a tunnel to (decrypted TLS in
 * inspect.ts, cleartext in cleartext.ts): the same parser limits, framing guard and idle
 * deadline as the explicit proxy's own listener, and the same answers to requests the parser
 * refuses (431 or 400, the error on the tunnel's connection record, then close). The server
 * never listens: connections are handed to it with emit('connection'). Node only runs
 * headersTimeout/requestTimeout checks for listening servers, so terminals arm the header
 * deadline themselves (armHeaderDeadline); keep-alive idle time is socket-level and does work.
 * `tunnelOf` names the tunnel a socket belongs to; `kind` names it in log lines. The terminal
 * adds its own 'request' (and 'upgrade') handlers.
 */
export function createTunnelHttpServer(options: TunnelHttpServerOptions, tunnelOf: (socket: Socket) => TunnelHttpState | undefined, kind: string): http.Server {
  const server = http.createServer({ maxHeaderSize: options.maxHeaderBytes, insecureHTTPParser: false, noDelay: true });
  const headersTooLarge = `request headers exceed ${options.maxHeaderBytes} bytes`;
  // Request lines Node's parser would accept but RFC 9112 does not are refused before it.
  guardRequestFraming(server, options, (socket, violation) =>
    refuseUnparsed(socket, tunnelOf(socket), violation.tooLarge, violation.tooLarge ? headersTooLarge : `malformed request: ${violation.reason}`, kind),
  );
  server.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    refuseUnparsed(socket, tunnelOf(socket), tooLarge, tooLarge ? headersTooLarge : `malformed request: ${err.reason ?? err.message} (${err.code ?? ''})`, kind);
  });
  server.timeout = options.idleTimeoutMs;
  server.keepAliveTimeout = 5_000;
  // See the explicit front-end: one more than the limit, so a request over it is refused.
  server.maxHeadersCount = options.maxHeaders + 1;
  server.on('timeout', (socket: Socket) => {
    const flow = tunnelOf(socket)?.flow;
    if (flow) noteLimitBreach(flow.log, 'limits.client_idle_timeout', flow.frontend, { limit_ms: options.idleTimeoutMs });
    socket.destroy();
  });
  return server;
}

/** A request refused before the server saw it whole: 431 or 400, on the connection record, then close. */
function refuseUnparsed(socket: Socket, tunnel: TunnelHttpState | undefined, tooLarge: boolean, reason: string, kind: string): void {
  const error = new GatewayError(tooLarge ? 'TG_ERR_HEADERS_TOO_LARGE' : 'TG_ERR_BAD_REQUEST', 'parse', reason);
  if (tunnel) {
    if (tooLarge) noteLimitBreach(tunnel.flow.log, 'http.max_header_size', tunnel.flow.frontend);
    tunnel.flow.log.info({ code: error.code, reason }, `${kind} request refused by the HTTP parser`);
    // No request record exists for it: the connection record says what happened.
    tunnel.flow.failed(error);
    tunnel.closeAs ??= 'refused';
  }
  writeRawHttpRefusal(socket, { kind: 'error', error }, tunnel?.flow.id ?? 'none', tunnel ? hostText(tunnel.name) : 'unknown');
  socket.destroySoon();
}

/**
 * (Re)starts the slow-header defence of a tunnel's HTTP/1.1 side: a client that has not sent a
 * whole request head within `ms` gets 408, the error on its connection record, and is closed.
 */
export function armHeaderDeadline(socket: Socket, tunnel: TunnelHttpState, ms: number): void {
  if (tunnel.headerTimer) clearTimeout(tunnel.headerTimer);
  tunnel.headerTimer = setTimeout(() => {
    noteLimitBreach(tunnel.flow.log, 'limits.header_timeout', tunnel.flow.frontend, { limit_ms: ms });
    const error = new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', 'the client did not send its request headers in time');
    tunnel.flow.failed(error);
    tunnel.closeAs ??= 'timeout';
    writeRawHttpRefusal(socket, { kind: 'error', error }, tunnel.flow.id, hostText(tunnel.name));
    socket.destroySoon();
  }, ms);
  tunnel.headerTimer.unref();
}
