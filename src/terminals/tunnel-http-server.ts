import http from 'node:http';
import type { Socket } from 'node:net';
import type { Flow } from '../flow/flow';
import { type FramingViolation, guardRequestFraming } from '../http/request-framing-guard';
import { noteLimitBreach } from '../observability/limit-breach';

export interface TunnelHttpServerOptions {
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
}

/**
 * The HTTP/1.1 server a terminal hands the client side of a tunnel to (decrypted TLS in
 * inspect.ts, cleartext in cleartext.ts): the same parser limits, framing guard and idle
 * deadline as the explicit proxy's own listener. The server never listens: connections are
 * handed to it with emit('connection'). Node only runs headersTimeout/requestTimeout checks for
 * listening servers, so each terminal keeps its own header deadline; keep-alive idle time is
 * socket-level and does work. `flowOf` names the flow a socket belongs to, for the log line of
 * an idle timeout; the terminal adds its own 'request' (and 'upgrade') handlers.
 */
export function createTunnelHttpServer(
  options: TunnelHttpServerOptions,
  flowOf: (socket: Socket) => Flow | undefined,
  onViolation: (socket: Socket, violation: FramingViolation) => void,
): http.Server {
  const server = http.createServer({ maxHeaderSize: options.maxHeaderBytes, insecureHTTPParser: false, noDelay: true });
  // Request lines Node's parser would accept but RFC 9112 does not are refused before it.
  guardRequestFraming(server, options, onViolation);
  server.timeout = options.idleTimeoutMs;
  server.keepAliveTimeout = 5_000;
  // See the explicit front-end: one more than the limit, so a request over it is refused.
  server.maxHeadersCount = options.maxHeaders + 1;
  server.on('timeout', (socket: Socket) => {
    const flow = flowOf(socket);
    if (flow) noteLimitBreach(flow.log, 'limits.client_idle_timeout', flow.frontend, { limit_ms: options.idleTimeoutMs });
    socket.destroy();
  });
  return server;
}
