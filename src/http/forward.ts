import http, { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { RequestRecord, TlsSummary } from '../audit/fields';
import type { Redactor } from '../audit/redact';
import type { AuditSink } from '../audit/sink';
import { type Egress, guardedLookup, refusalForLiteral } from '../egress/dial';
import { GatewayError } from '../errors/gateway-error';
import { type Refusal, refusalCode, refusalReason, writeHttpRefusal } from '../errors/rejection';
import type { Flow } from '../flow/flow';
import type { Principal } from '../identity/types';
import type { Decision } from '../policy/types';
import { type Target, targetText } from '../protocol/authority';
import { hostAuthorityText, hostText } from '../protocol/host';
import { publish } from '../observability/events';
import { classifyOriginError, type OriginAgents, originTlsFacts } from '../tls/origin';
import { type InboundRequest, type InboundResponse, withoutPseudoHeaders, writeResponseHead } from './exchange';
import type { CacheExchange, HttpCache, StoredReply } from './cache/exchange';
import { fromHttp1Response, fromHttp2Response } from './cache/origin-response';
import { noteLimitBreach } from '../observability/limit-breach';
import { type BodyFraming, requestBodyFraming, withHttp1Framing } from './framing';
import { forwardRequestHeaders, forwardResponseHeaders, viaNamesUs } from './headers';
import { Enforcement, type EnforcementAudit, NO_ENFORCEMENT_AUDIT } from './enforcement';
import { type H2OriginPool, h2RequestHeaders, rawFromH2Headers } from './h2-origin';
import type { UpgradeSocket } from './upgrade';
import { abortResponse } from './abort-response';
import { relayUpgraded } from './websocket-relay';

/** One HTTP request on its way through the gateway, plain or decrypted. */
export interface RequestContext {
  readonly flow: Flow;
  readonly requestId: string;
  /**
   * Who this request authenticated as: its own, since requests on one connection may carry
   * different credentials (or none) while an earlier one is still in flight.
   */
  readonly principal: Principal | null;
  readonly scheme: 'http' | 'https';
  /** Where the request goes: the absolute-form authority, the Host header, or the tunnel. */
  readonly target: Target;
  /** SNI for the origin connection (https only); null for IP-literal targets. */
  readonly servername: string | null;
  readonly decision: Decision;
  /** The client side's TLS parameters when the request arrived inside an inspected tunnel. */
  readonly clientTls: TlsSummary | null;
  /** SNI the client sent, for the audit record. */
  readonly clientSni: string | null;
  /** Host header to send; null = derive it from `target`. Inside a tunnel, the client's own. */
  readonly hostHeader: string | null;
  /** Set for a WebSocket handshake: the client's raw socket, relayed once the origin agrees. */
  readonly upgrade?: UpgradeSocket;
  /** The client speaks HTTP/2 and so does the origin: forward over an HTTP/2 origin session. */
  readonly originH2?: boolean;
}

export interface ForwarderOptions {
  readonly egress: Egress;
  readonly audit: AuditSink;
  readonly originAgents: OriginAgents;
  readonly via: string;
  readonly xForwardedFor: boolean;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxSocketsPerHost: number;
  /** What records and logs redact (audit.redact_headers, audit.redact_query_params). */
  readonly redactor: Redactor;
  /** Idle limit of an upgraded (WebSocket) connection, both directions together. */
  readonly tunnelIdleTimeoutMs: number;
  /** Multiplexed origin sessions for HTTP/2 clients of h2 origins; null = always HTTP/1.1. */
  readonly h2Origins: H2OriginPool | null;
  /** The shared HTTP cache (cache/exchange.ts); null = no caching. */
  readonly cache?: HttpCache | null;
}

function defaultPort(scheme: 'http' | 'https'): number {
  return scheme === 'https' ? 443 : 80;
}

/** Host header value for the origin: the authority, with the port only when not the default. */
export function hostHeaderFor(scheme: 'http' | 'https', target: Target): string {
  const host = hostAuthorityText(target.host);
  return target.port === defaultPort(scheme) ? host : `${host}:${target.port}`;
}

/**
 * The one HTTP forwarding path, shared by the explicit proxy, the transparent HTTP listener
 * and requests decrypted inside inspected tunnels: rewrite headers, send the request to a
 * pooled keep-alive origin connection, stream both bodies with backpressure, map failures to
 * a status, and write one audit record per request.
 */
export class HttpForwarder {
  private readonly plainAgent: http.Agent;

  constructor(private readonly options: ForwarderOptions) {
    this.plainAgent = new http.Agent({
      keepAlive: true,
      maxSockets: options.maxSocketsPerHost,
      maxFreeSockets: 64,
      timeout: options.idleTimeoutMs,
      scheduling: 'lifo',
    });
  }

  destroy(): void {
    this.plainAgent.destroy();
    this.options.h2Origins?.destroy();
  }

  forward(ctx: RequestContext, req: InboundRequest, res: InboundResponse): void {
    if (viaNamesUs(req.rawHeaders, this.options.via)) {
      // The request already passed through a gateway with our pseudonym: a forwarding loop.
      const error = new GatewayError('TG_ERR_LOOP', 'forward', `the request's Via header already names ${this.options.via}: a proxy loop`);
      refuseRequest(ctx, req, res, { kind: 'error', error }, this.options.audit, this.options.redactor, { connection: 'close' });
      return;
    }
    const literalRefusal = refusalForLiteral(this.options.egress, ctx.target);
    if (literalRefusal) {
      refuseRequest(ctx, req, res, { kind: 'error', error: literalRefusal }, this.options.audit, this.options.redactor);
      return;
    }
    // HTTP rules, request phase: before anything is sent upstream (or looked up in a cache).
    const rules = Enforcement.begin(ctx.decision.rule, req);
    const denial = rules.refusal;
    if (denial) {
      refuseRequest(ctx, req, res, denial, this.options.audit, this.options.redactor, {}, rules.audit());
      return;
    }
    const framing = requestBodyFraming(req);
    if (framing.kind === 'none') {
      this.send(ctx, req, res, rules, framing, true);
      return;
    }
    // The origin is not contacted until the body's first bytes have passed the parser: a
    // message whose framing turns out to be invalid (a bad chunk size) is then refused with 400
    // by the parser and never reaches the origin. A body that goes bad later can only reach
    // the origin as a truncated message followed by a reset, never as a second request, since
    // the gateway re-frames every body it forwards.
    let sent = false;
    awaitFirstBodyBytes(req, (ended) => {
      sent = true;
      this.send(ctx, req, res, rules, framing, ended);
    });
    res.once('close', () => {
      if (sent) return;
      // The client went away (or its body failed to parse) before any body byte: nothing was
      // sent upstream, but the request still gets its audit record.
      const tracker = new RequestTracker(ctx, req, res, this.options, rules);
      tracker.fail(new GatewayError('TG_ERR_BAD_REQUEST', 'parse', 'the request body did not arrive or did not parse; nothing was forwarded'));
      tracker.finish();
    });
  }

  private send(ctx: RequestContext, req: InboundRequest, res: InboundResponse, rules: Enforcement, framing: BodyFraming, bodyEnded: boolean): void {
    const { target, scheme } = ctx;
    const origin = `${scheme}://${targetText(target)}`;
    const insecure = scheme === 'https' && ctx.decision.rule?.upstreamInsecure === true;
    if (insecure) {
      ctx.flow.log.warn({ rule: ctx.decision.rule?.id, origin }, 'origin certificate NOT verified: upstream_insecure is set on this rule');
    }
    const goesH2 = ctx.originH2 && scheme === 'https' && !insecure && !ctx.upgrade && this.options.h2Origins !== null;
    const tracker = new RequestTracker(ctx, req, res, this.options, rules);
    // The cache lookup comes after the request rules above, so a request they deny is never
    // answered from the cache. One cache for HTTP/1.1 and HTTP/2 on either leg: entries hold
    // end-to-end fields only, so one filled over either protocol serves both. WebSocket
    // handshakes pass it by.
    const forwarded = forwardRequestHeaders(rules.requestHeaders(withoutPseudoHeaders(req.rawHeaders)), {
      host: ctx.hostHeader ?? hostHeaderFor(scheme, target),
      httpVersion: req.httpVersion,
      via: this.options.via,
      forwardedFor: this.options.xForwardedFor ? ctx.flow.clientAddress : null,
    });
    const cache = ctx.upgrade ? null : (this.options.cache?.open(ctx, req, forwarded) ?? null);
    tracker.cache = cache;
    const fresh = cache?.hit() ?? null;
    if (cache && fresh) {
      // CACHE: a fresh stored response answers the request; the origin is not contacted.
      req.resume();
      res.on('close', () => tracker.finish());
      sendStoredReply(ctx, this.options.via, cache, rules, fresh, res, tracker);
      return;
    }
    // CACHE: revalidating a stale entry sends its validators (If-None-Match/If-Modified-Since).
    const headers = cache ? cache.upstreamRequestHeaders(forwarded) : forwarded;
    // Upgrade and Connection are hop-by-hop and were dropped above; a WebSocket handshake asks
    // the origin for the same upgrade on the gateway's own hop (RFC 9110 7.8).
    if (ctx.upgrade) headers.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
    if (goesH2 && this.options.h2Origins) {
      this.forwardH2(ctx, req, res, headers, origin, this.options.h2Origins, rules, bodyEnded, tracker, cache);
      return;
    }
    const requestOptions: https.RequestOptions = {
      host: hostText(target.host),
      port: target.port,
      method: req.method,
      path: req.url,
      // Stated explicitly, whatever the method: see framing.ts.
      headers: withHttp1Framing(headers, framing),
      setHost: false,
      lookup: guardedLookup(this.options.egress, target.port) as unknown as https.RequestOptions['lookup'],
    };
    // Set when the gateway itself stops the exchange (a rule or DLP): the upstream errors that
    // follow are consequences, not origin failures.
    let cut = false;
    let upstream: http.ClientRequest;
    if (scheme === 'https') {
      upstream = https.request({
        ...requestOptions,
        agent: insecure ? this.options.originAgents.insecure : this.options.originAgents.verified,
        servername: ctx.servername ?? '',
      });
    } else {
      upstream = http.request({ ...requestOptions, agent: this.plainAgent });
    }

    const connectTimeoutMs = this.options.egress.connectTimeoutMs;
    upstream.once('socket', (socket) => {
      if (!socket.connecting) return;
      // Pooled agents have no connect deadline of their own; the response timer is far longer.
      const connectTimer = setTimeout(() => {
        noteLimitBreach(ctx.flow.log, 'upstream.connect_timeout', ctx.flow.frontend, { origin, ms: connectTimeoutMs });
        upstream.destroy(new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to ${origin} timed out after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('connect', () => clearTimeout(connectTimer));
      socket.once('close', () => clearTimeout(connectTimer));
    });

    const responseTimer = setTimeout(() => {
      noteLimitBreach(ctx.flow.log, 'upstream.response_timeout', ctx.flow.frontend, { origin, ms: this.options.responseTimeoutMs });
      upstream.destroy(new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'forward', `${origin} did not respond within ${this.options.responseTimeoutMs} ms`));
    }, this.options.responseTimeoutMs);

    let upgraded = false;
    const client = ctx.upgrade;
    if (client && res instanceof ServerResponse) {
      // 101 from the origin: from here on the exchange is a byte relay, not HTTP. A refusal
      // (any other status) takes the ordinary 'response' path below and reaches the client.
      upstream.on('upgrade', (upRes: IncomingMessage, upSocket, upHead: Buffer) => {
        clearTimeout(responseTimer);
        upgraded = true;
        if (scheme === 'https') tracker.originTls(upSocket as TLSSocket);
        tracker.responseHeaders(upRes.rawHeaders);
        res.detachSocket(client.socket);
        relayUpgraded({ client, upRes, upSocket, upHead, via: this.options.via, idleTimeoutMs: this.options.tunnelIdleTimeoutMs, log: ctx.flow.log }).then(
          (outcome) => tracker.finishUpgraded(outcome.status, outcome.bytesUp, outcome.bytesDown, outcome.close),
          () => tracker.finishUpgraded(101, 0, 0, 'error'),
        );
      });
    }

    upstream.on('response', (upRes) => {
      clearTimeout(responseTimer);
      if (scheme === 'https' && upRes.socket) tracker.originTls(upRes.socket as TLSSocket);
      if (cut) return upRes.destroy();
      // CACHE: a 304 that confirms the stale entry refreshes it, and the stored response is
      // served (through the response rules, like any stored reply).
      const fromOrigin = cache ? fromHttp1Response(upRes) : null;
      const refreshed = fromOrigin ? (cache?.revalidated(fromOrigin) ?? null) : null;
      // CACHE: a server error while revalidating may be answered with the stale entry instead.
      const stale = refreshed ?? (fromOrigin ? (cache?.staleIfError(fromOrigin.status) ?? null) : null);
      if (cache && stale) {
        upRes.resume();
        sendStoredReply(ctx, this.options.via, cache, rules, stale, res, tracker);
        return;
      }
      // HTTP rules, response phase: before the response is sent or stored in the cache.
      const verdict = rules.response(upRes.statusCode ?? 502, upRes.rawHeaders);
      if (verdict.refusal) {
        cut = true;
        upRes.destroy();
        upstream.destroy();
        // An upload still in flight is abandoned, so the connection cannot carry another request.
        writeHttpRefusal(res, verdict.refusal, ctx.requestId, origin, req.readableEnded ? {} : { connection: 'close' });
        return;
      }
      // Keep the origin's own Date rather than adding a second one.
      res.sendDate = false;
      const responseHeaders = forwardResponseHeaders([...verdict.headers], upRes.httpVersion, this.options.via);
      writeResponseHead(res, upRes.statusCode ?? 502, upRes.statusMessage, cache ? cache.responseHeaders(responseHeaders, upRes.statusCode ?? 502) : responseHeaders);
      tracker.responseHeaders(verdict.headers);
      // CACHE: copy the origin's response into the store while streaming; it enters only when
      // complete and fully delivered (a body cut by a rule destroys res, so nothing is stored).
      if (cache && fromOrigin) cache.fill(fromOrigin, res);
      upRes.on('data', (chunk: Buffer) => tracker.countDown(chunk.length));
      rules.responseBody(upRes, () => cutResponse(ctx, res, tracker, rules)).pipe(res);
      upRes.on('error', () => abortResponse(res));
      upRes.on('aborted', () => abortResponse(res));
    });

    upstream.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(responseTimer);
      if (upgraded || cut) return;
      const error = err instanceof GatewayError ? err : classifyOriginError(err, origin);
      if (!res.headersSent && serveStaleOnError(ctx, this.options.via, cache, rules, res, tracker, error)) return;
      tracker.fail(error);
      if (!res.headersSent) writeHttpRefusal(res, { kind: 'error', error }, ctx.requestId, origin);
      else abortResponse(res);
    });

    req.on('data', (chunk: Buffer) => tracker.countUp(chunk.length));
    const onCut = (refusal: Refusal): void => {
      // The upload is cut: the origin never gets the rest, the client gets 403 if it can.
      cut = true;
      clearTimeout(responseTimer);
      upstream.destroy();
      cutUpload(ctx, req, res, refusal, origin, tracker);
    };
    if (framing.kind === 'none' || ctx.upgrade) {
      // No body (a WebSocket handshake has none either: its frames are relayed after the 101).
      req.resume();
      upstream.end();
    } else {
      // An empty body that already ended would never make pipe() end the upstream request.
      rules.requestBody(bodyEnded ? Readable.from([]) : req, onCut).pipe(upstream);
    }
    res.on('close', () => {
      if (upgraded) return;
      clearTimeout(responseTimer);
      // The client went away before the exchange completed: stop the origin side too.
      if (!res.writableFinished) upstream.destroy();
      if (!cut) finishAfterUpload(req, res, tracker, rules);
      else tracker.finish();
    });
  }

  /** HTTP/2 end to end: one stream on the origin's shared session per client stream. */
  private forwardH2(
    ctx: RequestContext,
    req: InboundRequest,
    res: InboundResponse,
    headers: string[],
    origin: string,
    pool: H2OriginPool,
    rules: Enforcement,
    bodyEnded: boolean,
    tracker: RequestTracker,
    cache: CacheExchange | null,
  ): void {
    let cut = false;
    let responded = false;
    let failed = false;
    const session = pool.session(ctx.target, ctx.servername);
    let stream: http2.ClientHttp2Stream;
    const fail = (err: NodeJS.ErrnoException): void => {
      clearTimeout(responseTimer);
      if (cut) return;
      failed = true;
      // Streams pending on a session that failed to connect are cancelled with its error as cause.
      const cause = (err as { cause?: unknown }).cause;
      const underlying = err.code === 'ERR_HTTP2_STREAM_CANCEL' && cause instanceof Error ? (cause as NodeJS.ErrnoException) : err;
      const error = underlying instanceof GatewayError ? underlying : classifyOriginError(underlying, origin);
      if (!res.headersSent && serveStaleOnError(ctx, this.options.via, cache, rules, res, tracker, error)) {
        // Answered: a late response or error from this stream is no longer the client's concern.
        cut = true;
        return;
      }
      tracker.fail(error);
      if (!res.headersSent) writeHttpRefusal(res, { kind: 'error', error }, ctx.requestId, origin);
      else abortResponse(res);
    };
    const responseTimer = setTimeout(() => {
      fail(new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'forward', `${origin} did not respond within ${this.options.responseTimeoutMs} ms`) as GatewayError & NodeJS.ErrnoException);
      stream?.close(http2.constants.NGHTTP2_CANCEL);
    }, this.options.responseTimeoutMs);
    try {
      stream = session.request(h2RequestHeaders(req.method ?? 'GET', req.url ?? '/', headers));
    } catch (err) {
      fail(err as NodeJS.ErrnoException);
      return;
    }
    stream.on('error', fail);
    // A stream can end without a response and without an error (its session went away under
    // it, e.g. the origin closed the connection): the client must still get an answer.
    stream.on('close', () => {
      if (responded || failed || cut) return;
      fail(new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${origin} closed the HTTP/2 stream before responding`) as GatewayError & NodeJS.ErrnoException);
    });
    stream.on('response', (upHeaders) => {
      responded = true;
      clearTimeout(responseTimer);
      if (session.socket) tracker.originTls(session.socket as TLSSocket);
      if (cut) return;
      const status = Number(upHeaders[':status'] ?? 502);
      const upRaw = rawFromH2Headers(upHeaders);
      const fromOrigin = cache ? fromHttp2Response(stream, upRaw, status) : null;
      // CACHE: as on the HTTP/1.1 leg, a 304 confirming the stale entry refreshes and serves it.
      const refreshed = cache && fromOrigin ? (cache.revalidated(fromOrigin) ?? cache.staleIfError(status)) : null;
      if (cache && refreshed) {
        stream.resume();
        sendStoredReply(ctx, this.options.via, cache, rules, refreshed, res, tracker);
        return;
      }
      const verdict = rules.response(status, upRaw);
      if (verdict.refusal) {
        cut = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        writeHttpRefusal(res, verdict.refusal, ctx.requestId, origin);
        return;
      }
      res.sendDate = false;
      const responseHeaders = forwardResponseHeaders([...verdict.headers], '2.0', this.options.via);
      writeResponseHead(res, status, undefined, cache ? cache.responseHeaders(responseHeaders, status) : responseHeaders);
      tracker.responseHeaders(verdict.headers);
      if (cache && fromOrigin) cache.fill(fromOrigin, res);
      stream.on('data', (chunk: Buffer) => tracker.countDown(chunk.length));
      rules.responseBody(stream, () => cutResponse(ctx, res, tracker, rules)).pipe(res);
    });
    req.on('data', (chunk: Buffer) => tracker.countUp(chunk.length));
    rules
      .requestBody(bodyEnded ? Readable.from([]) : req, (refusal) => {
        cut = true;
        clearTimeout(responseTimer);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        cutUpload(ctx, req, res, refusal, origin, tracker);
      })
      .pipe(stream);
    res.on('close', () => {
      clearTimeout(responseTimer);
      if (!res.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      if (!cut) finishAfterUpload(req, res, tracker, rules);
      else tracker.finish();
    });
  }
}

/**
 * Sends a response from the cache the way an origin's is sent: through the response rules
 * (header edits, denials, body limits), with Via, Cache-Status and the audit tracker.
 */
function sendStoredReply(ctx: RequestContext, via: string, cache: CacheExchange, rules: Enforcement, reply: StoredReply, res: InboundResponse, tracker: RequestTracker): void {
  const verdict = rules.response(reply.status, reply.rawHeaders);
  if (verdict.refusal) {
    writeHttpRefusal(res, verdict.refusal, ctx.requestId, `${ctx.scheme}://${targetText(ctx.target)}`);
    return;
  }
  // Date and Age come from the stored response, brought up to date by the cache.
  res.sendDate = false;
  writeResponseHead(res, reply.status, reply.statusMessage, cache.responseHeaders(forwardResponseHeaders([...verdict.headers], reply.httpVersion, via), reply.status));
  tracker.responseHeaders(verdict.headers);
  const body = reply.body;
  if (body === null) {
    res.end();
    return;
  }
  const source = Readable.from([body]);
  source.on('data', (chunk: Buffer) => tracker.countDown(chunk.length));
  rules.responseBody(source, () => cutResponse(ctx, res, tracker, rules)).pipe(res);
}

/**
 * CACHE (stale-if-error): the origin could not be reached or did not answer in time; a stale
 * entry within its stale-if-error window answers instead. The origin's failure is logged, and
 * the audit record shows `cache: stale` rather than an error. False = nothing to serve.
 */
function serveStaleOnError(ctx: RequestContext, via: string, cache: CacheExchange | null, rules: Enforcement, res: InboundResponse, tracker: RequestTracker, error: GatewayError): boolean {
  const stale = cache?.staleIfError(null) ?? null;
  if (!cache || !stale) return false;
  ctx.flow.log.info({ request: ctx.requestId, code: error.code, reason: error.message }, 'origin failed; serving a stale cached response (stale-if-error)');
  sendStoredReply(ctx, via, cache, rules, stale, res, tracker);
  return true;
}

/**
 * A response body stopped by a size rule while it streamed: its head is already sent, so the
 * client's connection (HTTP/2: stream) is reset and the record says which rule cut it.
 */
function cutResponse(ctx: RequestContext, res: InboundResponse, tracker: RequestTracker, rules: Enforcement): void {
  const rule = rules.audit().httpRule ?? '?';
  tracker.note(`response cut after ${tracker.bytesDown} bytes: larger than HTTP rule ${rule} allows`);
  ctx.flow.log.info({ request: ctx.requestId, http_rule: rule }, 'response stopped by policy');
  abortResponse(res);
}

/**
 * An upload stopped by an HTTP rule or DLP (the origin side is already cancelled): 403 when
 * the response has not started, else the client's connection (HTTP/2: stream) is reset.
 */
function cutUpload(ctx: RequestContext, req: InboundRequest, res: InboundResponse, refusal: Refusal, origin: string, tracker: RequestTracker): void {
  if (refusal.kind === 'error') tracker.fail(refusal.error);
  ctx.flow.log.info({ request: ctx.requestId, origin, code: refusalCode(refusal), reason: refusalReason(refusal) }, 'upload stopped by policy');
  if (res.headersSent) {
    const finished = res.writableFinished;
    // A finished HTTP/1.1 response no longer holds the socket: reset the connection itself.
    abortResponse(res, res instanceof ServerResponse ? (req.socket as Socket) : null);
    // A finished response already ran its close handler, which left the record to us.
    if (finished) tracker.finish();
    return;
  }
  // The rest of the body is discarded; the connection is not reused after it.
  req.resume();
  writeHttpRefusal(res, refusal, ctx.requestId, origin, res instanceof ServerResponse ? { connection: 'close' } : {});
}

/**
 * The origin may answer before the upload ends; the rest is still checked by the rules, so the
 * record waits for it (a cut then shows in the same record).
 */
function finishAfterUpload(req: InboundRequest, res: InboundResponse, tracker: RequestTracker, rules: Enforcement): void {
  // HTTP/2: the stream is closed with the response, so no upload can follow it.
  if (!rules.inspectsUpload || !(res instanceof ServerResponse) || !res.writableFinished || req.readableEnded || req.destroyed) {
    tracker.finish();
    return;
  }
  // Node detaches a request from its socket once the response is done, so its own 'close'
  // may never come: the socket's close is the backstop.
  const finish = (): void => tracker.finish();
  req.once('end', finish);
  req.once('close', finish);
  req.socket.once('close', finish);
}

/**
 * Calls `ready` once the first body bytes were parsed (they are put back for the pipe) or the
 * body ended; never when the client's message fails to parse first (the parser answered 400).
 */
function awaitFirstBodyBytes(req: InboundRequest, ready: (ended: boolean) => void): void {
  const done = (): void => {
    req.removeListener('data', onData);
    req.removeListener('end', onEnd);
  };
  const onData = (chunk: Buffer): void => {
    done();
    req.pause();
    req.unshift(chunk);
    ready(false);
  };
  const onEnd = (): void => {
    done();
    ready(true);
  };
  req.on('data', onData);
  req.once('end', onEnd);
}

/** Collects what the audit record of one request needs, and writes it once. */
class RequestTracker {
  private readonly start = performance.now();
  private up = 0;
  private down = 0;
  private error: GatewayError | null = null;
  private originCert: string | null = null;
  private upstreamTls: TlsSummary | null = null;
  private respHeaders: readonly string[] | null = null;
  private statusOverride: number | null = null;
  private closeNote: string | null = null;
  private done = false;
  cache: CacheExchange | null = null;

  constructor(
    private readonly ctx: RequestContext,
    private readonly req: InboundRequest,
    private readonly res: InboundResponse,
    private readonly options: ForwarderOptions,
    private readonly rules: Enforcement,
  ) {}

  countUp(bytes: number): void {
    this.up += bytes;
  }

  countDown(bytes: number): void {
    this.down += bytes;
  }

  get bytesDown(): number {
    return this.down;
  }

  /** What the record's `error` says when nothing failed but the exchange did not complete. */
  note(text: string): void {
    this.closeNote ??= text;
  }

  fail(error: GatewayError): void {
    this.error ??= error;
  }

  originTls(socket: TLSSocket): void {
    const facts = originTlsFacts(socket);
    this.originCert = facts.certSha256;
    this.upstreamTls = facts.tls;
  }

  responseHeaders(raw: readonly string[]): void {
    this.respHeaders = raw;
  }

  /** An upgraded exchange ended: one record for the whole WebSocket, with the bytes relayed. */
  finishUpgraded(status: number, bytesUp: number, bytesDown: number, close: string): void {
    this.statusOverride = status;
    this.up += bytesUp;
    this.down += bytesDown;
    if (close === 'error' || close === 'timeout') this.closeNote = `upgraded connection ended: ${close}`;
    this.finish();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    const { ctx, req, res } = this;
    const aborted = this.statusOverride === null && !res.writableFinished && this.error === null;
    const status = this.statusOverride ?? (res.headersSent ? res.statusCode : 0);
    const durationMs = Math.round((performance.now() - this.start) * 1000) / 1000;
    const cache = this.cache?.outcome ?? null;
    publish('tollgate:request:completed', { scheme: ctx.scheme, status, durationMs, cache });
    this.options.audit.write(buildRequestRecord(ctx, req, {
      status,
      bytesFromClient: this.up,
      bytesToClient: this.down,
      durationMs,
      error: this.error ? `${this.error.code}: ${this.error.message}` : (this.closeNote ?? (aborted ? 'client closed before the response completed' : null)),
      upstreamCertSha256: this.originCert,
      upstreamTls: this.upstreamTls,
      responseHeaders: this.respHeaders,
      redactor: this.options.redactor,
      cache,
      rules: this.rules.audit(),
    }));
  }
}

export interface RequestOutcome {
  readonly status: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly durationMs: number;
  readonly error: string | null;
  readonly upstreamCertSha256: string | null;
  readonly upstreamTls: TlsSummary | null;
  readonly responseHeaders: readonly string[] | null;
  readonly redactor: Redactor;
  /** The cache outcome: hit, miss, revalidated, bypass; null when no cache took part. */
  readonly cache?: string | null;
  /** HTTP rules and DLP outcome; absent = no rules applied. */
  readonly rules?: EnforcementAudit;
}

/** HTTP/2's :authority, else Host; bounded, since it is written into every record. */
function presentedAuthority(req: InboundRequest): string | null {
  const value = req.headers[':authority'] ?? req.headers.host;
  return typeof value === 'string' ? value.slice(0, 300) : null;
}

export function buildRequestRecord(ctx: RequestContext, req: InboundRequest, outcome: RequestOutcome): RequestRecord {
  const decision = ctx.decision;
  return {
    type: 'request',
    time: new Date().toISOString(),
    request_id: ctx.requestId,
    flow_id: ctx.flow.id,
    frontend: ctx.flow.frontend,
    client: ctx.flow.clientAddress,
    client_port: ctx.flow.clientPort,
    user: ctx.principal?.user ?? null,
    scheme: ctx.scheme,
    host: hostText(ctx.target.host),
    port: ctx.target.port,
    sni: ctx.clientSni,
    authority: presentedAuthority(req),
    method: req.method ?? '',
    path: outcome.redactor.target(req.url ?? ''),
    status: outcome.status,
    bytes_from_client: outcome.bytesFromClient,
    bytes_to_client: outcome.bytesToClient,
    duration_ms: outcome.durationMs,
    action: decision.action,
    rule: decision.rule?.id ?? null,
    decision_code: decision.code,
    reason: decision.reason,
    policy_version: decision.policyVersion,
    error: outcome.error,
    cache: outcome.cache ?? null,
    upstream_cert_sha256: outcome.upstreamCertSha256,
    client_tls: ctx.clientTls,
    upstream_tls: outcome.upstreamTls,
    request_headers: outcome.redactor.headerObject(withoutPseudoHeaders(req.rawHeaders)),
    response_headers: outcome.responseHeaders ? outcome.redactor.headerObject(outcome.responseHeaders) : null,
    http_version: req.httpVersion,
    http_rule: outcome.rules?.httpRule ?? null,
    flagged_by: outcome.rules?.flaggedBy ?? [],
    dlp: outcome.rules?.dlp ?? null,
  };
}

/** Answers a request the gateway refuses itself (policy, malformed) and audits it. */
export function refuseRequest(
  ctx: RequestContext,
  req: InboundRequest,
  res: InboundResponse,
  refusal: Refusal,
  audit: AuditSink,
  redactor: Redactor,
  extraHeaders: Record<string, string> = {},
  rules: EnforcementAudit = NO_ENFORCEMENT_AUDIT,
): void {
  const start = performance.now();
  const origin = `${ctx.scheme}://${targetText(ctx.target)}`;
  ctx.flow.log.info({ request: ctx.requestId, origin, code: refusalCode(refusal) }, 'request refused');
  // Drain whatever body the client sends so the connection can be reused for its next request.
  req.resume();
  writeHttpRefusal(res, refusal, ctx.requestId, origin, extraHeaders);
  const record = buildRequestRecord(ctx, req, {
    status: res.statusCode,
    bytesFromClient: 0,
    bytesToClient: 0,
    durationMs: Math.round((performance.now() - start) * 1000) / 1000,
    error: refusal.kind === 'error' ? `${refusal.error.code}: ${refusal.error.message}` : null,
    upstreamCertSha256: null,
    upstreamTls: null,
    responseHeaders: null,
    redactor,
    rules,
  });
  audit.write(record);
  publish('tollgate:request:completed', { scheme: ctx.scheme, status: record.status, durationMs: record.duration_ms, cache: null });
}
