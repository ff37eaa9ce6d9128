import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerRequest } from 'node:http2';
import type { Socket } from 'node:net';
import type { TlsSummary } from '../audit/record-fields';
import { GatewayError } from '../errors/gateway-error';
import type { Refusal } from '../errors/refusal';
import { Flow, type FlowServices } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import { authenticateProxyRequest, type ProxyAuthSettings } from '../identity/proxy-authentication';
import type { Principal } from '../identity/principal';
import { noteLimitBreach } from '../observability/limit-breach';
import { checkRequestAuthority, decide } from '../policy/decide';
import { canonicalPath } from '../policy/rules/path';
import type { CompiledPolicy, Decision, FrontendKind } from '../policy/types';
import { type Target, parseHostAndOptionalPort } from '../protocol/target';
import { type Host, hostAuthorityText } from '../protocol/host';
import type { InboundRequest, InboundResponse } from './inbound';
import type { HttpForwarder } from './forward';
import { rawHeaderValue, tooManyHeaders } from './headers';
import type { RequestContext } from './request-context';
import { type RecordOptions, refuseRequest } from './request-record';
import { badRequest, checkHostAgreement, checkRequestFraming, hasBody, presentedAuthorities, replaceForwardingFields, splitAbsoluteForm } from './request-checks';
import type { ReverseBackend, ReverseSource } from './reverse-source';
import type { UpgradeSocket } from './upgrade';

export interface HttpEntryOptions extends RecordOptions {
  /** The policy in force now; a plain-HTTP request is decided when it arrives. */
  readonly policy: () => CompiledPolicy;
  readonly forwarder: HttpForwarder;
  readonly flows: FlowServices;
  readonly maxHeaders: number;
  /** Proxy authentication on the explicit listener; null = none. */
  readonly auth: ProxyAuthSettings | null;
  /** `transparent.http_origin_port`: the port of a transparent request whose Host names none. */
  readonly transparentPort: number;
}

/** An inspected tunnel as its decrypted requests see it. */
export interface DecryptedTunnel {
  readonly flow: Flow;
  /** The name the origin connection is verified for: the SNI, else the target. */
  readonly name: Host;
  readonly servername: string | null;
  readonly clientSni: string | null;
  readonly clientTls: TlsSummary | null;
}

/** A plain request with its destination learned, on its way to a decision. */
interface PlainTarget {
  readonly target: Target;
  /** Origin-form request target to send. */
  readonly path: string;
  /** The client's own Host to send on (transparent); null = from the target. */
  readonly hostHeader: string | null;
}

/**
 * The one HTTP entry: every request the gateway serves comes through here, from the explicit
 * proxy, the transparent HTTP listener or the decrypted side of an inspected tunnel. It checks
 * the request (header count, version, framing), learns its destination the way its source
 * says, decides, builds the RequestContext, and hands it to the forwarder or refuses it, with
 * an audit record either way.
 */
export class HttpEntry {
  private readonly connectionFlows = new WeakMap<Socket, Flow>();
  /** How a plain-HTTP connection the gateway refused ends (its record's `close`); client-closed otherwise. */
  private readonly connectionEnds = new WeakMap<Socket, 'refused' | 'timeout'>();

  constructor(private readonly options: HttpEntryOptions) {}

  /** A request on a plain-HTTP client connection of the explicit or transparent listener. */
  plain(frontend: 'explicit-http' | 'transparent-http', req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void {
    const flow = this.connectionFlow(req.socket, frontend);
    const requestId = flow.nextRequest();
    const refuse = (refusal: Refusal, target: Target | null, close = true): void => this.refuseUndecided(flow, requestId, req, res, refusal, target, close);
    const problem = this.validate(flow, req, true);
    if (problem) {
      refuse({ kind: 'error', error: problem }, null);
      return;
    }
    const learned = frontend === 'explicit-http' ? this.absoluteTarget(req) : this.transparentTarget(req);
    if (typeof learned === 'string') {
      refuse({ kind: 'error', error: badRequest(learned) }, null);
      return;
    }
    flow.learnedTarget(learned.target);
    const serve = (principal: Principal | null): void => this.decidePlain(flow, requestId, principal, learned, req, res, upgrade);
    const auth = frontend === 'explicit-http' ? this.options.auth : null;
    if (!auth) {
      serve(null);
      return;
    }
    void authenticateProxyRequest(auth, req.rawHeaders, flow.clientAddress, flow.frontend).then((result) => {
      if (result.ok) {
        // Each request on a connection authenticates on its own and is decided and recorded as
        // that principal; the connection record names the last one that succeeded.
        flow.authenticated(result.principal);
        serve(result.principal);
        return;
      }
      // A request without credentials is how every browser starts; only failures are news.
      flow.log[result.missing ? 'debug' : 'info']({ code: result.error.code, reason: result.error.message }, 'proxy authentication refused');
      refuse({ kind: 'error', error: result.error }, learned.target, hasBody(req));
    });
  }

  /** A request decrypted inside an inspected tunnel (HTTP/1.1 or HTTP/2). */
  decrypted(tunnel: DecryptedTunnel, req: InboundRequest, res: InboundResponse, upgrade?: UpgradeSocket): void {
    const { flow } = tunnel;
    const isH2 = req instanceof Http2ServerRequest;
    const target = flow.target!;
    const ctx = (decision: Decision, hostHeader: string | null = null): RequestContext => ({
      flow,
      requestId,
      // A tunnel authenticates once, when it is opened.
      principal: flow.principal,
      scheme: 'https',
      target,
      servername: tunnel.servername,
      decision,
      clientTls: tunnel.clientTls,
      clientSni: tunnel.clientSni,
      hostHeader,
      ...(upgrade ? { upgrade } : {}),
      // h2 is offered to clients only for origins that speak it (the ALPN probe).
      ...(isH2 ? { originH2: true } : {}),
    });
    const requestId = flow.nextRequest();
    const tunnelDecision = flow.decision!;
    const malformed = (error: GatewayError): void => refuseRequest(ctx(tunnelDecision), req, res, { kind: 'error', error }, this.options, isH2 ? {} : { connection: 'close' });
    const problem = this.validate(flow, req, !isH2) ?? ((req.url ?? '').startsWith('/') || req.url === '*' ? null : badRequest('requests inside a tunnel must use origin-form targets (/path)'));
    if (problem) {
      malformed(problem);
      return;
    }
    // Every authority the request presents (Host; HTTP/2's :authority, and a Host field if also
    // sent) must name the connection's origin: see checkRequestAuthority.
    const written = presentedAuthorities(req);
    const authorities: Target[] = [];
    for (const value of written) {
      const parsed = parseHostAndOptionalPort(value, target.port);
      if (!parsed.ok) {
        malformed(badRequest(`invalid ${isH2 ? 'authority' : 'Host header'}: ${parsed.reason}`));
        return;
      }
      authorities.push(parsed.target);
    }
    const decision = checkRequestAuthority(tunnelDecision, { host: tunnel.name, port: target.port }, authorities, written);
    if (decision.action === 'deny') {
      refuseRequest(ctx(decision), req, res, { kind: 'deny', decision }, this.options);
      return;
    }
    this.options.forwarder.forward(ctx(decision, written[0] ?? null), req, res);
  }

  /**
   * A cleartext HTTP request inside a CONNECT or SOCKS tunnel to an inspected destination. The
   * tunnel's target is authoritative: the request goes to its host and port (a SOCKS tunnel to
   * port 8080 is http://name:8080), and a Host or absolute-form authority naming anything else
   * is refused as fronting, as for TLS. Served like explicit-proxy HTTP (rules, DLP, cache, one
   * record per request).
   */
  tunnelled(tunnel: DecryptedTunnel, req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): void {
    const { flow } = tunnel;
    const target = flow.target!;
    const requestId = flow.nextRequest();
    const tunnelDecision = flow.decision!;
    const ctx = (decision: Decision, hostHeader: string | null = null): RequestContext => ({
      flow,
      requestId,
      principal: flow.principal,
      scheme: 'http',
      target,
      servername: null,
      decision,
      clientTls: null,
      clientSni: null,
      hostHeader,
      ...(upgrade ? { upgrade } : {}),
    });
    const malformed = (error: GatewayError): void => refuseRequest(ctx(tunnelDecision), req, res, { kind: 'error', error }, this.options, { connection: 'close' });
    const problem = this.validate(flow, req, true);
    if (problem) {
      malformed(problem);
      return;
    }
    const written: string[] = [];
    const url = req.url ?? '';
    if (!url.startsWith('/')) {
      const absolute = splitAbsoluteForm(url);
      if (absolute?.scheme !== 'http') {
        malformed(badRequest('requests inside a cleartext tunnel must use origin-form (/path) or http:// absolute-form targets'));
        return;
      }
      written.push(absolute.authority);
      req.url = absolute.path;
    }
    const host = rawHeaderValue(req.rawHeaders, 'host');
    if (host !== undefined) written.push(host);
    const authorities: Target[] = [];
    for (const value of written) {
      const parsed = parseHostAndOptionalPort(value, 80);
      if (!parsed.ok) {
        malformed(badRequest(`invalid Host header or request target: ${parsed.reason}`));
        return;
      }
      authorities.push(parsed.target);
    }
    const decision = checkRequestAuthority(tunnelDecision, target, authorities, written);
    if (decision.action === 'deny') {
      refuseRequest(ctx(decision), req, res, { kind: 'deny', decision }, this.options);
      return;
    }
    this.options.forwarder.forward(ctx(decision), req, res);
  }

  /** A decrypted request refused before it could be served (a body on a non-WebSocket upgrade). */
  refuseDecrypted(tunnel: DecryptedTunnel, req: IncomingMessage, res: ServerResponse, reason: string): void {
    const { flow } = tunnel;
    const ctx: RequestContext = {
      flow,
      requestId: flow.nextRequest(),
      principal: flow.principal,
      scheme: 'https',
      target: flow.target!,
      servername: tunnel.servername,
      decision: flow.decision!,
      clientTls: tunnel.clientTls,
      clientSni: tunnel.clientSni,
      hostHeader: null,
    };
    refuseRequest(ctx, req, res, { kind: 'error', error: badRequest(reason) }, this.options, { connection: 'close' });
  }

  /** A plain request refused by upgrade.ts before it had a target (a body on a non-WebSocket upgrade). */
  refusePlain(frontend: 'explicit-http' | 'transparent-http', req: IncomingMessage, res: ServerResponse, reason: string): void {
    const flow = this.connectionFlow(req.socket, frontend);
    this.refuseUndecided(flow, flow.nextRequest(), req, res, { kind: 'error', error: badRequest(reason) }, null, true);
  }

  /**
   * A plain-HTTP connection refused before a request could be handed to the entry: Node's parser
   * or the request-line check refused its bytes (400, 431, 408 for headers too slow), or the
   * listener does not serve what it asked (CONNECT on a transparent or reverse listener). The
   * refusal goes on the connection's flow (started now if no request came before): its record
   * says `close: refused` (`timeout` for a header timeout) with the error, when the socket
   * closes. The caller answers the client (the page names the flow's id) and closes.
   */
  refuseConnection(frontend: FrontendKind, socket: Socket, error: GatewayError, close: 'refused' | 'timeout'): Flow {
    const flow = this.connectionFlow(socket, frontend);
    flow.failed(error);
    if (!this.connectionEnds.has(socket)) this.connectionEnds.set(socket, close);
    return flow;
  }

  /**
   * A request on a reverse-proxy (ingress) listener. The client believes it talks to the
   * application: Host (HTTP/2 :authority) and path pick a route, policy decides on the route's
   * host as the destination name, and the request goes to the route's backend and nowhere else.
   * A Host no route serves gets 421 and never reaches an upstream. The client's forwarding
   * fields are replaced (not appended to): the gateway is the edge, it does not trust them.
   */
  reverse(source: ReverseSource, req: InboundRequest, res: InboundResponse, upgrade?: UpgradeSocket): void {
    const isH2 = req instanceof Http2ServerRequest;
    const flow = source.flow ?? this.connectionFlow(req.socket as Socket, source.frontend);
    const requestId = flow.nextRequest();
    const policyVersion = this.options.policy().version;
    const nowhere: Target = { host: { kind: 'name', name: 'invalid' }, port: 0 };
    const ctx = (decision: Decision, backend: ReverseBackend | null, publicAuthority?: string): RequestContext => ({
      flow,
      requestId,
      principal: null,
      scheme: backend?.scheme ?? source.scheme,
      target: backend?.target ?? nowhere,
      servername: backend?.servername ?? null,
      decision,
      clientTls: source.clientTls,
      clientSni: source.clientSni,
      // The backend gets its own authority as Host; the client's is in X-Forwarded-Host.
      hostHeader: null,
      ...(upgrade ? { upgrade } : {}),
      ...(publicAuthority === undefined ? {} : { publicAuthority }),
    });
    const refuse = (error: GatewayError, close: boolean): void => {
      const decision: Decision = { action: 'deny', code: 'rule', rule: null, pattern: null, reason: error.message, policyVersion };
      source.routed(requestId, null);
      refuseRequest(ctx(decision, null), req, res, { kind: 'error', error }, this.options, close && !isH2 ? { connection: 'close' } : {});
    };
    const problem =
      (source.refusal === undefined ? null : badRequest(source.refusal)) ??
      this.validate(flow, req, !isH2) ??
      ((req.url ?? '').startsWith('/') ? null : badRequest('the reverse-proxy listener expects origin-form requests (/path)'));
    if (problem) {
      refuse(problem, true);
      return;
    }
    const authority = presentedAuthorities(req)[0];
    if (authority === undefined || authority.trim() === '') {
      refuse(badRequest('no Host header: the reverse-proxy listener picks the application by Host'), true);
      return;
    }
    const parsed = parseHostAndOptionalPort(authority.trim(), source.port);
    if (!parsed.ok) {
      refuse(badRequest(`invalid ${isH2 ? 'authority' : 'Host header'}: ${parsed.reason}`), true);
      return;
    }
    const host = parsed.target.host;
    // Routes are chosen on the canonical path, as HTTP rules match: a path_prefix is where an
    // application's exposure ends, and `/api/../internal` must not pick the /api/ backend and
    // then be resolved outside it there. Spellings backends read differently are refused.
    const decision = decide({ target: host, port: source.port, sni: null, frontend: source.policyFrontend, principal: null }, this.options.policy());
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const routingPath = canonicalPath(query < 0 ? url : url.slice(0, query), { allowEncodedSlashes: decision.rule?.allowEncodedSlashes ?? false });
    if (!routingPath.ok) {
      refuse(badRequest(`the request path cannot be routed: ${routingPath.reason}`), true);
      return;
    }
    const misdirected = source.misdirected?.(host) ?? null;
    const backend = misdirected === null ? source.route(host, routingPath.path) : null;
    if (!backend) {
      const error = new GatewayError('TG_ERR_MISDIRECTED', 'decide', misdirected ?? `no route in reverse.routes serves ${authority.trim()} and there is no reverse.default_route`);
      flow.log.info({ request_id: requestId, host: authority.trim(), reason: error.message }, 'reverse request refused: misdirected (421)');
      refuse(error, false);
      return;
    }
    source.routed(requestId, backend);
    flow.learnedTarget({ host, port: source.port });
    flow.decided(decision, true);
    const context = ctx(decision, backend, `${hostAuthorityText(host)}:${source.port}`);
    if (decision.action === 'deny') {
      refuseRequest(context, req, res, { kind: 'deny', decision }, this.options);
      return;
    }
    replaceForwardingFields(req, { client: flow.clientAddress, proto: source.scheme, host: authority.trim() });
    this.options.forwarder.forward(context, req, res);
  }

  /** The checks every HTTP source shares; the error to answer with, or null. */
  private validate(flow: Flow, req: InboundRequest, http1: boolean): GatewayError | null {
    const max = this.options.maxHeaders;
    if (tooManyHeaders(req, max)) {
      noteLimitBreach(flow.log, 'http.max_headers', flow.frontend, { client: flow.clientAddress, max });
      return new GatewayError('TG_ERR_HEADERS_TOO_LARGE', 'parse', `more than ${max} header fields (http.max_headers)`);
    }
    // Node's HTTP/1 parser accepts "HTTP/2.0" in a request line; only HTTP/1.x is spoken there.
    if (http1 && (req as IncomingMessage).httpVersionMajor !== 1) return badRequest(`HTTP/${req.httpVersion} is not supported in an HTTP/1 request line`);
    const framing = checkRequestFraming(req);
    return framing ? badRequest(framing) : null;
  }

  /** The explicit proxy: the destination is the absolute-form authority; Host must agree. */
  private absoluteTarget(req: IncomingMessage): PlainTarget | string {
    const absolute = splitAbsoluteForm(req.url ?? '');
    if (!absolute) return 'tollgate is a proxy: send absolute-form requests (http://host/path) or CONNECT';
    if (absolute.scheme !== 'http') return `scheme "${absolute.scheme}" is not proxied as plain HTTP; use CONNECT for https`;
    const parsed = parseHostAndOptionalPort(absolute.authority, 80);
    if (!parsed.ok) return `invalid request target: ${parsed.reason}`;
    return checkHostAgreement(req, parsed.target, 80) ?? { target: parsed.target, path: absolute.path, hostHeader: null };
  }

  /**
   * The transparent listener: the destination is `Host` (port `transparent.http_origin_port`
   * when it names none); an absolute-form target (RFC 9112 3.2.2) wins and Host must agree.
   * The client's own Host is sent on.
   */
  private transparentTarget(req: IncomingMessage): PlainTarget | string {
    const url = req.url ?? '';
    const port = this.options.transparentPort;
    const host = rawHeaderValue(req.rawHeaders, 'host');
    const absolute = url.startsWith('/') ? null : splitAbsoluteForm(url);
    if (!absolute && !url.startsWith('/')) return 'the transparent HTTP listener expects origin-form requests (/path)';
    if (absolute && absolute.scheme !== 'http') return `scheme "${absolute.scheme}" is not served by the transparent HTTP listener`;
    const authority = absolute ? absolute.authority : host;
    if (authority === undefined || authority.trim() === '') return 'no Host header: a transparently redirected request must name its destination in Host';
    const parsed = parseHostAndOptionalPort(authority.trim(), port);
    if (!parsed.ok) return `invalid Host: ${parsed.reason}`;
    const disagreement = absolute ? checkHostAgreement(req, parsed.target, port) : null;
    return disagreement ?? { target: parsed.target, path: absolute ? absolute.path : url, hostHeader: host ?? null };
  }

  private decidePlain(flow: Flow, requestId: string, principal: Principal | null, learned: PlainTarget, req: IncomingMessage, res: ServerResponse, upgrade: UpgradeSocket | undefined): void {
    const { target } = learned;
    const decision = decide({ target: target.host, port: target.port, sni: null, frontend: flow.frontend, principal }, this.options.policy());
    flow.decided(decision, true);
    const ctx: RequestContext = {
      flow,
      requestId,
      principal,
      scheme: 'http',
      target,
      servername: null,
      decision,
      clientTls: null,
      clientSni: null,
      hostHeader: learned.hostHeader,
      ...(upgrade ? { upgrade } : {}),
    };
    if (decision.action === 'deny') {
      refuseRequest(ctx, req, res, { kind: 'deny', decision }, this.options);
      return;
    }
    req.url = learned.path;
    this.options.forwarder.forward(ctx, req, res);
  }

  /**
   * A plain request refused before policy was consulted (malformed, or proxy authentication
   * missing or wrong). `close` ends the connection after the answer instead of draining the
   * request body: a malformed request leaves the connection in an unknown state.
   */
  private refuseUndecided(flow: Flow, requestId: string, req: IncomingMessage, res: ServerResponse, refusal: Refusal, target: Target | null, close: boolean): void {
    const reason = refusal.kind === 'error' ? refusal.error.message : 'refused';
    const decision: Decision = { action: 'deny', code: 'rule', rule: null, pattern: null, reason, policyVersion: this.options.policy().version };
    const ctx: RequestContext = {
      flow,
      requestId,
      principal: null,
      scheme: 'http',
      target: target ?? { host: { kind: 'name', name: 'invalid' }, port: 0 },
      servername: null,
      decision,
      clientTls: null,
      clientSni: null,
      hostHeader: null,
    };
    refuseRequest(ctx, req, res, refusal, this.options, close ? { connection: 'close' } : {});
    if (close) res.once('finish', () => req.socket.destroySoon?.());
  }

  /**
   * The flow of a plain-HTTP client connection, started with its first request (or its
   * refusal); it closes (one connection record) when the socket does.
   */
  private connectionFlow(socket: Socket, frontend: FrontendKind): Flow {
    const existing = this.connectionFlows.get(socket);
    if (existing) return existing;
    const flow = new Flow(frontend, socket, this.options.flows);
    this.connectionFlows.set(socket, flow);
    void runFlow(
      flow,
      () =>
        new Promise((resolve) => {
          const closed = (): void => {
            flow.transferred(socket.bytesRead, socket.bytesWritten);
            resolve(this.connectionEnds.get(socket) ?? 'client-closed');
          };
          // A refusal can come for a socket that has already closed (the framing check reports
          // one destroyed under it): its 'close' will not come again.
          if (socket.closed) closed();
          else socket.once('close', closed);
        }),
    );
    return flow;
  }
}
