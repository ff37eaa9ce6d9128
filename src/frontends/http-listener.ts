import http from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import { type Flow, peerAddress } from '../flow/flow';
import { guardRequestFraming } from '../http/request-framing-guard';
import type { Logger } from '../logging/logger';
import { noteLimitBreach } from '../observability/limit-breach';

/** The limits every HTTP/1.1 listener (explicit proxy, transparent HTTP) enforces the same way. */
export interface HttpListenerLimits {
  readonly maxHeaderBytes: number;
  /** `http.max_headers`: the entry refuses more; Node must keep one more to let it see them. */
  readonly maxHeaders: number;
  readonly headerTimeoutMs: number;
  readonly clientIdleTimeoutMs: number;
}

/**
 * Records a connection whose request was refused before the server saw it whole, on the
 * connection's flow (HttpEntry.refuseConnection), and returns that flow: its id goes on the
 * refusal page and in the log line.
 */
export type UnparsedRefusalRecorder = (socket: Socket, error: GatewayError, close: 'refused' | 'timeout') => Flow;

/**
 * An `http.Server` with the gateway's parser limits, idle timeout and parser-error replies;
 * `frontend` names the listener in limit-breach events and log lines, and `record` puts each
 * parser refusal in the audit trail.
 */
export function createHttpListener(limits: HttpListenerLimits, frontend: string, logger: Logger, record: UnparsedRefusalRecorder): http.Server {
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headerTimeoutMs,
    // Whole-request deadlines would cut long uploads; idle time is bounded by `timeout` below.
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    insecureHTTPParser: false,
    requireHostHeader: false,
    noDelay: true,
    // Node checks headersTimeout only this often (30 s by default), which would let a slowloris
    // client hold a socket far longer than limits.header_timeout says.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4))),
  });
  // Node keeps the first maxHeadersCount fields and silently drops the rest; one more than the
  // limit lets a request over it be recognised and refused instead of forwarded truncated.
  server.maxHeadersCount = limits.maxHeaders + 1;
  server.timeout = limits.clientIdleTimeoutMs;
  server.on('timeout', (socket: Socket) => {
    const peer = peerAddress(socket);
    noteLimitBreach(logger, 'limits.client_idle_timeout', frontend, { client: peer.address, client_port: peer.port, ms: limits.clientIdleTimeoutMs });
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => answerParserError(err, socket, limits, { frontend, record }));
  // Node's parser accepts request lines RFC 9112 refuses (`GET  /path HTTP/1.1`); every
  // request line is checked before it gets there. Admission and PROXY protocol wrap this later.
  guardRequestFraming(server, limits, (socket, violation) =>
    refuseUnparsed(
      socket,
      violation.tooLarge ? 'too-large' : 'malformed',
      violation.tooLarge ? `request line and headers exceed ${limits.maxHeaderBytes} bytes` : `malformed request: ${violation.reason}`,
      'request-framing',
      { frontend, record },
    ),
  );
  return server;
}

/** Where a parser refusal is reported: the listener's name, and the audit (whose flow logs it). */
interface RefusalReporting {
  readonly frontend: string;
  readonly record: UnparsedRefusalRecorder;
}

/** A request Node's parser refused (too large, too slow, malformed): a 431/408/400 in HTTP, then close. */
function answerParserError(err: NodeJS.ErrnoException & { reason?: string }, socket: Socket, limits: HttpListenerLimits, reporting: RefusalReporting): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code = err.code ?? '';
  const tooLarge = code === 'HPE_HEADER_OVERFLOW';
  const timeout = code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'HPE_HEADERS_TIMEOUT';
  const reason = tooLarge
    ? `request line and headers exceed ${limits.maxHeaderBytes} bytes`
    : timeout
      ? 'the client did not send its request headers in time'
      : `malformed request: ${err.reason ?? err.message} (${code})`;
  refuseUnparsed(socket, tooLarge ? 'too-large' : timeout ? 'timeout' : 'malformed', reason, code, reporting);
}

/**
 * A request refused before the server saw it whole (by Node's parser, or by the request-line
 * check in front of it), `parser` naming which: recorded on the connection's flow (a
 * `connection` record with `close: refused`, or `timeout` for a header timeout, and the error),
 * logged, answered in HTTP, closed.
 */
function refuseUnparsed(socket: Socket, kind: 'too-large' | 'timeout' | 'malformed', reason: string, parser: string, reporting: RefusalReporting): void {
  const { frontend } = reporting;
  const peer = peerAddress(socket);
  const error = new GatewayError(kind === 'too-large' ? 'TG_ERR_HEADERS_TOO_LARGE' : kind === 'timeout' ? 'TG_ERR_CLIENT_TIMEOUT' : 'TG_ERR_BAD_REQUEST', 'parse', reason);
  const flow = reporting.record(socket, error, kind === 'timeout' ? 'timeout' : 'refused');
  if (kind !== 'malformed') noteLimitBreach(flow.log, kind === 'too-large' ? 'http.max_header_size' : 'limits.header_timeout', frontend, { client: peer.address, client_port: peer.port });
  flow.log.info({ frontend, client: peer.address, client_port: peer.port, code: error.code, parser, reason }, 'request refused by the HTTP parser');
  writeRawHttpRefusal(socket, { kind: 'error', error }, flow.id, 'unknown');
  socket.destroySoon();
}
