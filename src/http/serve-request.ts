import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Redactor } from '../audit/redact';
import type { AuditSink } from '../audit/sink';
import { GatewayError } from '../errors/gateway-error';
import { type Refusal, refusalReason } from '../errors/rejection';
import { Flow } from '../flow/flow';
import type { Principal } from '../identity/types';
import type { Logger } from '../logging/logger';
import { publish } from '../observability/events';
import { decide } from '../policy/decide';
import type { CompiledPolicy, Decision, FrontendKind } from '../policy/types';
import { type Target, parseHostAndOptionalPort } from '../protocol/authority';
import { isSameHost } from '../protocol/host';
import type { HttpForwarder } from './forward';
import type { RequestContext } from './request-context';
import { refuseRequest } from './request-record';
import { countRawHeader, rawHeaderValue } from './headers';
import type { UpgradeSocket } from './upgrade';
import type { InboundRequest } from './exchange';

export interface PlainHttpServices {
  readonly policy: () => CompiledPolicy;
  readonly forwarder: HttpForwarder;
  readonly audit: AuditSink;
  readonly logger: Logger;
  readonly redactor: Redactor;
  /** Writes the connection record of a plain-HTTP client connection when it closes. */
  readonly finishConnection: (flow: Flow) => void;
}

const flows = new WeakMap<Socket, Flow>();

/**
 * The flow of a plain-HTTP client connection, created with its first request; its connection
 * record is written when the socket closes.
 */
export function flowForConnection(socket: Socket, frontend: FrontendKind, services: PlainHttpServices): Flow {
  let flow = flows.get(socket);
  if (!flow) {
    const created = new Flow(frontend, socket, services.logger);
    flows.set(socket, created);
    socket.once('close', () => {
      created.bytesFromClient = socket.bytesRead;
      created.bytesToClient = socket.bytesWritten;
      services.finishConnection(created);
    });
    flow = created;
  }
  return flow;
}

/**
 * Refuses messages whose framing or target is ambiguous (request smuggling): Node's strict
 * parser already rejects Content-Length with Transfer-Encoding, differing Content-Lengths,
 * bad chunk sizes, obs-fold and bare CR; what it lets through is checked here.
 */
export function checkRequestFraming(req: InboundRequest): string | null {
  if (countRawHeader(req.rawHeaders, 'host') > 1) return 'more than one Host header';
  const te = rawHeaderValue(req.rawHeaders, 'transfer-encoding');
  if (te !== undefined && (countRawHeader(req.rawHeaders, 'transfer-encoding') > 1 || te.trim().toLowerCase() !== 'chunked')) {
    // Any coding but a lone "chunked" would be forwarded re-chunked without its other codings.
    return `unsupported Transfer-Encoding "${te}" (only "chunked" is accepted)`;
  }
  return null;
}

/** Node's HTTP/1 parser accepts "HTTP/2.0" in a request line; only HTTP/1.x is spoken there. */
export function checkHttp1Version(req: IncomingMessage): string | null {
  return req.httpVersionMajor === 1 ? null : `HTTP/${req.httpVersion} is not supported in an HTTP/1 request line`;
}

/** Host header, when present, must name the same host and port as the request target. */
export function checkHostAgreement(req: IncomingMessage, target: Target, defaultPort: number): string | null {
  const host = rawHeaderValue(req.rawHeaders, 'host');
  if (host === undefined) return null;
  const parsed = parseHostAndOptionalPort(host, defaultPort);
  if (!parsed.ok || !isSameHost(parsed.target.host, target.host) || parsed.target.port !== target.port) {
    return `the Host header "${host}" does not match the request target`;
  }
  return null;
}

export interface PlainRequest {
  readonly flow: Flow;
  /** Who this request authenticated as (proxy authentication), or null. */
  readonly principal: Principal | null;
  readonly target: Target;
  /** Origin-form request target to send upstream. */
  readonly path: string;
  /** A WebSocket handshake's client socket. */
  readonly upgrade?: UpgradeSocket;
  /** Host header to send as is (transparent HTTP: the client's own); absent = from `target`. */
  readonly hostHeader?: string | null;
}

/** Decide and forward (or refuse) one plain-HTTP request whose target is known. */
export function servePlainRequest(services: PlainHttpServices, request: PlainRequest, req: IncomingMessage, res: ServerResponse): void {
  const { flow, target } = request;
  const policy = services.policy();
  const decision: Decision = decide({ target: target.host, port: target.port, sni: null, frontend: flow.frontend, principal: request.principal }, policy);
  const ctx: RequestContext = {
    flow,
    requestId: `${flow.id}-${flow.requests}`,
    principal: request.principal,
    scheme: 'http',
    target,
    servername: null,
    decision,
    clientTls: null,
    clientSni: null,
    hostHeader: request.hostHeader ?? null,
    ...(request.upgrade ? { upgrade: request.upgrade } : {}),
  };
  flow.decision = decision;
  publish('tollgate:flow:decided', { frontend: flow.frontend, action: decision.action, code: decision.code });
  if (decision.action === 'deny') {
    refuseRequest(ctx, req, res, { kind: 'deny', decision }, services);
    return;
  }
  req.url = request.path;
  services.forwarder.forward(ctx, req, res);
}

/** A request refused before a target could be established (400s). */
export function refuseMalformed(
  services: PlainHttpServices,
  flow: Flow,
  req: IncomingMessage,
  res: ServerResponse,
  reason: string,
  target: Target | null,
  error: GatewayError = new GatewayError('TG_ERR_BAD_REQUEST', 'parse', reason),
): void {
  const refusal: Refusal = { kind: 'error', error };
  // A malformed request leaves the connection in an unknown state: answer and close.
  refuseBeforeDecision(services, flow, req, res, refusal, target, true);
}

/**
 * A request refused before policy was consulted (malformed, or proxy authentication missing or
 * wrong). `close` ends the connection after the answer instead of draining the request body.
 */
export function refuseBeforeDecision(services: PlainHttpServices, flow: Flow, req: IncomingMessage, res: ServerResponse, refusal: Refusal, target: Target | null, close: boolean): void {
  const reason = refusalReason(refusal);
  const placeholder: Target = target ?? { host: { kind: 'name', name: 'invalid' }, port: 0 };
  const decision: Decision = { action: 'deny', code: 'rule', rule: null, pattern: null, reason, policyVersion: services.policy().version };
  const ctx: RequestContext = {
    flow,
    requestId: `${flow.id}-${flow.requests}`,
    // Refused before authentication succeeded (or without it): nobody.
    principal: null,
    scheme: 'http',
    target: placeholder,
    servername: null,
    decision,
    clientTls: null,
    clientSni: null,
    hostHeader: null,
  };
  if (!close) {
    refuseRequest(ctx, req, res, refusal, services);
    return;
  }
  refuseRequest(ctx, req, res, refusal, services, { connection: 'close' });
  res.once('finish', () => req.socket.destroySoon?.());
}
