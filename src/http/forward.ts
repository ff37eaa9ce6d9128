import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { GatewayError } from '../errors/gateway-error';
import { type Refusal, refusalCode, refusalReason, writeHttpRefusal } from '../errors/refusal';
import { type LimitKey, noteLimitBreach } from '../observability/limit-breach';
import { targetText } from '../protocol/target';
import { abortResponse } from './abort-response';
import { asksOnlyIfCached } from './cache/directives';
import type { HttpCache } from './cache/http-cache';
import { refreshInBackground } from './cache-refresh';
import { Enforcement } from './enforcement';
import { type InboundRequest, type InboundResponse, withoutPseudoHeaders, writeResponseHead } from './inbound';
import { type BodyFraming, requestBodyFraming } from './framing';
import { forwardRequestHeaders, forwardResponseHeaders, rawHeaderValue, viaNamesUs, withoutHopByHop } from './headers';
import type { OriginExchange, OriginLeg, OriginReply, UpgradedReply } from './origin-leg';
import { type RequestContext, hostHeaderFor } from './request-context';
import { type RecordOptions, RequestTracker, refuseRequest } from './request-record';
import { answerOnlyIfCachedMiss, cutResponse, sendStoredReply, serveStaleOnError } from './respond';
import { handshakeForInspection, websocketDlpEvents } from './websocket-dlp-audit';
import { relayUpgraded } from './websocket-relay';

export interface ForwarderOptions extends RecordOptions {
  readonly via: string;
  readonly xForwardedFor: boolean;
  /** From the request's start to the origin's response head, on either leg. */
  readonly responseTimeoutMs: number;
  /** How long a response body may stop moving before the exchange is cut (`upstream.idle_timeout`). */
  readonly originIdleTimeoutMs: number;
  /** Idle limit of an upgraded (WebSocket) connection, both directions together. */
  readonly tunnelIdleTimeoutMs: number;
  /** The origin legs: HTTP/1.1 always; HTTP/2 for HTTP/2 clients of h2 origins, when enabled. */
  readonly legs: { readonly http1: OriginLeg; readonly http2: OriginLeg | null };
  /** The shared HTTP cache (cache/http-cache.ts); null = no caching. */
  readonly cache?: HttpCache | null;
}

/**
 * The one HTTP forwarding path, shared by the explicit proxy, the transparent HTTP listener and
 * requests decrypted inside inspected tunnels. Its stages, in order:
 *   request rules -> cache lookup -> origin leg -> response rules -> cache store,
 * with bodies streamed both ways under backpressure, one response deadline for either leg,
 * failures mapped to a status, and one audit record per request.
 */
export class HttpForwarder {
  constructor(private readonly options: ForwarderOptions) {}

  forward(ctx: RequestContext, req: InboundRequest, res: InboundResponse): void {
    if (viaNamesUs(req.rawHeaders, this.options.via)) {
      // The request already passed through a gateway with our pseudonym: a forwarding loop.
      const error = new GatewayError('TG_ERR_LOOP', 'forward', `the request's Via header already names ${this.options.via}: a proxy loop`);
      refuseRequest(ctx, req, res, { kind: 'error', error }, this.options, { connection: 'close' });
      return;
    }
    // HTTP rules, request phase: before anything is sent upstream (or looked up in a cache).
    const rules = Enforcement.begin(ctx.decision.rule, req);
    const denial = rules.refusal;
    if (denial) {
      refuseRequest(ctx, req, res, denial, this.options, {}, rules.audit());
      return;
    }
    const framing = requestBodyFraming(req);
    if (framing.kind === 'none') {
      this.send(ctx, req, res, rules, framing, true);
      return;
    }
    // The origin is not contacted until the body's first bytes have passed the parser: a
    // message whose framing turns out to be invalid (a bad chunk size) is then refused with 400
    // by the parser and never reaches the origin. A body that goes bad later reaches the origin
    // as a truncated message followed by an abort, never as a second request, since every body
    // forwarded is framed (framing.ts).
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

  /** `waited`: the tracker of a request that already waited for a collapsed miss (it waits once). */
  private send(ctx: RequestContext, req: InboundRequest, res: InboundResponse, rules: Enforcement, framing: BodyFraming, bodyEnded: boolean, waited?: RequestTracker): void {
    const { target, scheme } = ctx;
    const { via } = this.options;
    const origin = `${scheme}://${targetText(target)}`;
    const verifyCertificate = !(scheme === 'https' && ctx.decision.rule?.upstreamInsecure === true);
    if (!verifyCertificate) {
      ctx.flow.log.warn({ rule: ctx.decision.rule?.id, origin }, 'origin certificate NOT verified: upstream_insecure is set on this rule');
    }
    const tracker = waited ?? new RequestTracker(ctx, req, res, this.options, rules);
    // The client's hop-by-hop fields go first: its Connection header cannot name a field the
    // rules set (set_header) or the gateway adds.
    const forwarded = forwardRequestHeaders(rules.requestHeaders(withoutHopByHop(withoutPseudoHeaders(req.rawHeaders))), {
      host: ctx.hostHeader ?? hostHeaderFor(scheme, target),
      httpVersion: req.httpVersion,
      via,
      forwardedFor: this.options.xForwardedFor ? ctx.flow.clientAddress : null,
    });
    // The cache lookup comes after the request rules, so a request they deny is never answered
    // from the cache. One cache for HTTP/1.1 and HTTP/2 on either leg: entries hold end-to-end
    // fields only. WebSocket handshakes pass it by.
    const cache = ctx.upgrade ? null : (this.options.cache?.open(ctx, req, forwarded, { collapse: waited === undefined }) ?? null);
    tracker.cache = cache;
    const fresh = cache?.hit() ?? null;
    const h2 = ctx.originH2 === true && scheme === 'https' && verifyCertificate && !ctx.upgrade ? this.options.legs.http2 : null;
    const leg = h2 ?? this.options.legs.http1;
    if (cache && fresh) {
      // CACHE: a stored response answers the request; the origin is not contacted for it.
      req.resume();
      res.on('close', () => tracker.finish());
      sendStoredReply(ctx, via, cache, rules, fresh, res, tracker);
      // CACHE (stale-while-revalidate): a stale answer starts its key's one background refresh.
      const refresh = cache.backgroundRefresh(forwarded);
      const background = refresh ? this.options.cache?.open(ctx, req, refresh.headers, { background: true }) : null;
      if (refresh && !background) refresh.done();
      if (refresh && background) {
        refreshInBackground({
          cache: background,
          leg,
          request: { target, scheme, servername: ctx.servername, verifyCertificate, method: 'GET', path: req.url ?? '/', headers: refresh.headers, framing: { kind: 'none' }, upgrade: false },
          rules: Enforcement.begin(ctx.decision.rule, req),
          responseTimeoutMs: this.options.responseTimeoutMs,
          idleTimeoutMs: this.options.originIdleTimeoutMs,
          log: ctx.flow.log,
          requestId: ctx.requestId,
          done: refresh.done,
        });
      }
      return;
    }
    // CACHE (only-if-cached, RFC 9111 5.2.1.7): nothing stored answers, and the client asked
    // that the origin not be contacted.
    if (!ctx.upgrade && (cache ? cache.onlyIfCached : asksOnlyIfCached(forwarded))) {
      req.resume();
      res.on('close', () => tracker.finish());
      answerOnlyIfCachedMiss(ctx, via, cache, res, tracker);
      return;
    }
    // CACHE (collapse): another request is fetching this key; wait for it, then look again.
    const wait = cache?.collapse() ?? null;
    if (wait) {
      ctx.flow.log.debug({ request_id: ctx.requestId }, 'cache miss collapsed: waiting for the response another request is fetching');
      req.resume();
      let gone = false;
      const onClose = (): void => {
        gone = true;
        tracker.finish();
      };
      res.once('close', onClose);
      void wait.then(() => {
        res.removeListener('close', onClose);
        if (!gone && !res.destroyed) this.send(ctx, req, res, rules, framing, bodyEnded, tracker);
      });
      return;
    }
    // Set when the gateway itself stops the exchange (a rule, DLP, the deadline, the client
    // leaving): what the origin side does afterwards is no longer the client's concern.
    let cut = false;
    let upgraded = false;
    const fail = (error: GatewayError, limit: LimitKey | null = timeoutKey(error)): void => {
      clearTimeout(responseTimer);
      if (cut) return;
      if (limit) noteLimitBreach(ctx.flow.log, limit, ctx.flow.frontend, { origin });
      // CACHE (stale-if-error): a stale entry may answer for an origin that failed.
      if (!res.headersSent && serveStaleOnError(ctx, via, cache, rules, res, tracker, error)) {
        cut = true;
        return;
      }
      tracker.fail(error);
      if (!res.headersSent) tracker.countDown(writeHttpRefusal(res, { kind: 'error', error }, ctx.requestId, origin));
      else abortResponse(res);
    };
    let responseTimer: NodeJS.Timeout | undefined;
    const exchange: OriginExchange = leg.start(
      {
        target,
        scheme,
        servername: ctx.servername,
        verifyCertificate,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        // CACHE: revalidating a stale entry sends its validators (If-None-Match/If-Modified-Since).
        // DLP on WebSocket messages: no extension is offered, so payloads are never compressed.
        headers: cache ? cache.upstreamRequestHeaders(forwarded) : ctx.upgrade && ctx.decision.rule?.dlp ? handshakeForInspection(forwarded) : forwarded,
        framing,
        upgrade: ctx.upgrade !== undefined,
      },
      {
        onResponse: (reply) => {
          clearTimeout(responseTimer);
          if (cut) return;
          const stop = (): void => {
            cut = true;
            exchange.cancel();
          };
          this.respond(ctx, req, res, rules, tracker, reply, stop);
          // An origin that stops sending mid-body is cut after upstream.idle_timeout, as a
          // failure of the origin (never as a complete response: fail() resets the client).
          // While the gateway holds bytes the client has not taken (backpressure), the origin
          // is waiting on the client, not silent: the client's own idle limit applies then.
          const ms = this.options.originIdleTimeoutMs;
          const stall = setTimeout(() => {
            if (reply.body.isPaused() || reply.body.readableLength > 0) {
              stall.refresh();
              return;
            }
            const error = new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'forward', `${origin} sent no response bytes for ${ms} ms`);
            exchange.cancel();
            fail(error, 'upstream.idle_timeout');
            cut = true;
          }, ms);
          reply.body.on('data', () => stall.refresh());
          reply.body.once('close', () => clearTimeout(stall));
          res.once('close', () => clearTimeout(stall));
        },
        onUpgrade: (reply) => {
          clearTimeout(responseTimer);
          upgraded = true;
          this.relay(ctx, res, tracker, reply);
        },
        onError: fail,
      },
    );
    responseTimer = setTimeout(() => {
      exchange.cancel();
      fail(exchange.noResponse(this.options.responseTimeoutMs), 'upstream.response_timeout');
      cut = true;
    }, this.options.responseTimeoutMs);

    req.on('data', (chunk: Buffer) => tracker.countUp(chunk.length));
    if (framing.kind === 'none' || ctx.upgrade) {
      // No body (a WebSocket handshake has none: its frames are relayed after the 101).
      req.resume();
      exchange.body?.end();
    } else {
      // An empty body that already ended would never make pipe() end the origin's body.
      rules
        .requestBody(bodyEnded ? Readable.from([]) : req, (refusal) => {
          // The upload is cut: the origin never gets the rest, the client gets 403 if it can.
          cut = true;
          clearTimeout(responseTimer);
          exchange.cancel();
          cutUpload(ctx, req, res, refusal, origin, tracker);
        })
        // A leg gives a body stream to every request that has one.
        .pipe(exchange.body!);
    }
    res.on('close', () => {
      // CACHE (collapse): whatever became of the exchange, requests waiting on it look again.
      cache?.release();
      if (upgraded) return;
      clearTimeout(responseTimer);
      // The client went away before the exchange completed: stop the origin side too.
      if (!res.writableFinished) exchange.cancel();
      if (!cut) finishAfterUpload(req, res, tracker, rules);
      else tracker.finish();
    });
  }

  /** The origin's response head arrived: response rules, then stream (and maybe store) it. */
  private respond(ctx: RequestContext, req: InboundRequest, res: InboundResponse, rules: Enforcement, tracker: RequestTracker, reply: OriginReply, stop: () => void): void {
    const { via } = this.options;
    const cache = tracker.cache;
    tracker.originTls(reply.tls);
    // CACHE: a 304 that confirms the stale entry refreshes it, and the stored response is served
    // (through the response rules, like any stored reply); a server error while revalidating may
    // be answered with the stale entry instead.
    const stored = cache ? (cache.revalidated(reply) ?? cache.staleIfError(reply.status)) : null;
    if (cache && stored) {
      reply.body.resume();
      sendStoredReply(ctx, via, cache, rules, stored, res, tracker);
      return;
    }
    // HTTP rules, response phase: before the response is sent or stored in the cache.
    // The origin's hop-by-hop fields go before the response rules edit the rest.
    const verdict = rules.response(reply.status, withoutHopByHop(reply.rawHeaders));
    if (verdict.refusal) {
      stop();
      // An upload still in flight is abandoned, so the connection cannot carry another request.
      tracker.countDown(
        writeHttpRefusal(res, verdict.refusal, ctx.requestId, `${ctx.scheme}://${targetText(ctx.target)}`, req.readableEnded || !(res instanceof ServerResponse) ? {} : { connection: 'close' }),
      );
      return;
    }
    // Keep the origin's own Date rather than adding a second one.
    res.sendDate = false;
    const headers = forwardResponseHeaders([...verdict.headers], reply.httpVersion, via);
    writeResponseHead(res, reply.status, reply.statusMessage, cache ? cache.responseHeaders(headers, reply.status) : headers);
    tracker.responseHeaders(verdict.headers);
    // CACHE: copy the response into the store while streaming; it enters only when complete and
    // fully delivered (a body cut by a rule destroys res, so nothing is stored).
    if (cache) cache.fill(reply, res);
    reply.body.on('data', (chunk: Buffer) => tracker.countDown(chunk.length));
    rules.responseBody(reply.body, () => cutResponse(ctx, res, tracker, rules)).pipe(res);
  }

  /** 101 from the origin: from here on the exchange is a byte relay, recorded when it ends. */
  private relay(ctx: RequestContext, res: InboundResponse, tracker: RequestTracker, reply: UpgradedReply): void {
    const client = ctx.upgrade;
    if (!client || !(res instanceof ServerResponse)) {
      reply.socket.destroy();
      return;
    }
    tracker.originTls(reply.tls);
    tracker.responseHeaders(reply.rawHeaders);
    const rule = ctx.decision.rule;
    const dlp = rule?.dlp ?? null;
    if (dlp && rawHeaderValue(reply.rawHeaders, 'sec-websocket-extensions') !== undefined) {
      // An extension nobody offered (RFC 6455 9.1: the client must fail the connection); its
      // frames could not be inspected.
      reply.socket.destroy();
      const error = new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', 'the origin accepted the WebSocket with an extension that was not offered; its messages could not be inspected');
      tracker.fail(error);
      // The upgrade's response is detached from its socket when finished: it may never close.
      res.once('finish', () => tracker.finish());
      res.once('close', () => tracker.finish());
      tracker.countDown(writeHttpRefusal(res, { kind: 'error', error }, ctx.requestId, `${ctx.scheme}://${targetText(ctx.target)}`));
      return;
    }
    res.detachSocket(client.socket);
    const inspection = dlp && rule ? { policy: dlp, events: websocketDlpEvents(tracker, dlp, rule.id, ctx.flow.log, ctx.requestId) } : null;
    relayUpgraded({ client, upgrade: reply, via: this.options.via, idleTimeoutMs: this.options.tunnelIdleTimeoutMs, log: ctx.flow.log, dlp: inspection }).then(
      (outcome) => tracker.finishUpgraded(outcome.status, outcome.bytesUp, outcome.bytesDown, outcome.close),
      () => tracker.finishUpgraded(101, 0, 0, 'error'),
    );
  }
}

/** The limit a timeout of the origin leg breached: the connect or the response deadline. */
function timeoutKey(error: GatewayError): LimitKey | null {
  if (error.code !== 'TG_ERR_UPSTREAM_TIMEOUT') return null;
  return error.phase === 'connect' ? 'upstream.connect_timeout' : 'upstream.response_timeout';
}

/**
 * An upload stopped by an HTTP rule or DLP (the origin side is already cancelled): 403 when
 * the response has not started, else the client's connection (HTTP/2: stream) is reset.
 */
function cutUpload(ctx: RequestContext, req: InboundRequest, res: InboundResponse, refusal: Refusal, origin: string, tracker: RequestTracker): void {
  if (refusal.kind === 'error') tracker.fail(refusal.error);
  ctx.flow.log.info({ request_id: ctx.requestId, origin, code: refusalCode(refusal), reason: refusalReason(refusal) }, 'upload stopped by policy');
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
  tracker.countDown(writeHttpRefusal(res, refusal, ctx.requestId, origin, res instanceof ServerResponse ? { connection: 'close' } : {}));
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
