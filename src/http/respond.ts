import { Readable } from 'node:stream';
import type { GatewayError } from '../errors/gateway-error';
import { writeHttpRefusal } from '../errors/refusal';
import { targetText } from '../protocol/target';
import { abortResponse } from './abort-response';
import type { CacheExchange, StoredReply } from './cache/http-cache';
import type { Enforcement } from './enforcement';
import { type InboundResponse, writeResponseHead } from './inbound';
import { forwardResponseHeaders } from './headers';
import type { RequestContext } from './request-context';
import type { RequestTracker } from './request-record';

/**
 * Sends a response from the cache the way an origin's is sent: through the response rules
 * (header edits, denials, body limits), with Via, Cache-Status and the audit tracker.
 */
export function sendStoredReply(ctx: RequestContext, via: string, cache: CacheExchange, rules: Enforcement, reply: StoredReply, res: InboundResponse, tracker: RequestTracker): void {
  const verdict = rules.response(reply.status, reply.rawHeaders);
  if (verdict.refusal) {
    tracker.countDown(writeHttpRefusal(res, verdict.refusal, ctx.requestId, `${ctx.scheme}://${targetText(ctx.target)}`));
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
export function serveStaleOnError(ctx: RequestContext, via: string, cache: CacheExchange | null, rules: Enforcement, res: InboundResponse, tracker: RequestTracker, error: GatewayError): boolean {
  const stale = cache?.staleIfError(null) ?? null;
  if (!cache || !stale) return false;
  ctx.flow.log.info({ request_id: ctx.requestId, code: error.code, reason: error.message }, 'origin failed; serving a stale cached response (stale-if-error)');
  sendStoredReply(ctx, via, cache, rules, stale, res, tracker);
  return true;
}

/**
 * CACHE (only-if-cached): the request may only be answered from the cache and nothing stored
 * can answer it: 504, as RFC 9111 5.2.1.7 says, with no origin contact. `cache` is null when
 * the cache is off (then nothing can ever answer such a request).
 */
export function answerOnlyIfCachedMiss(ctx: RequestContext, via: string, cache: CacheExchange | null, res: InboundResponse, tracker: RequestTracker): void {
  ctx.flow.log.info({ request_id: ctx.requestId }, 'only-if-cached request not in the cache: 504 without contacting the origin');
  const body = Buffer.from('Gateway Timeout: the response is not in the cache, and the request said only-if-cached.\n');
  cache?.onlyIfCachedMiss();
  const raw = forwardResponseHeaders(['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), 'cache-control', 'no-store'], '1.1', via);
  const headers = cache ? cache.responseHeaders(raw, 504) : raw;
  writeResponseHead(res, 504, 'Gateway Timeout', headers);
  tracker.responseHeaders(headers);
  tracker.countDown(body.length);
  res.end(body);
}

/**
 * A response body stopped by a size rule while it streamed: its head is already sent, so the
 * client's connection (HTTP/2: stream) is reset and the record says which rule cut it.
 */
export function cutResponse(ctx: RequestContext, res: InboundResponse, tracker: RequestTracker, rules: Enforcement): void {
  const rule = rules.audit().httpRule ?? '?';
  tracker.note(`response cut after ${tracker.bytesDown} bytes: larger than HTTP rule ${rule} allows`);
  ctx.flow.log.info({ request_id: ctx.requestId, http_rule: rule }, 'response stopped by policy');
  abortResponse(res);
}
