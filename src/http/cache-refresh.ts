import { Writable } from 'node:stream';
import type { GatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';
import type { CacheExchange } from './cache/http-cache';
import type { Enforcement } from './enforcement';
import type { OriginLeg, OriginRequest } from './origin-leg';

export interface BackgroundRefresh {
  /** A cache exchange opened with `background: true`: it revalidates, never serves. */
  readonly cache: CacheExchange;
  readonly leg: OriginLeg;
  /** The GET to send (without the client's own validators; the cache adds the entry's). */
  readonly request: OriginRequest;
  /** Response rules for this destination: a response they deny is not stored. */
  readonly rules: Enforcement;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly log: Logger;
  /** The request whose stale answer started the refresh, for the log. */
  readonly requestId: string;
  /** Called once when the refresh ends, however it ends (frees the key for the next one). */
  readonly done: () => void;
}

/**
 * stale-while-revalidate (RFC 5861 section 3): after a stale entry was served, one request to
 * the origin refreshes it with nobody waiting. A 304 refreshes the entry, a storable response
 * replaces it, an unstorable one removes it; an error or timeout leaves it as it was, to be
 * served stale while the window lasts and revalidated in the foreground after that. The same
 * response deadline and idle limit as a client's request apply; the body goes only to the
 * store (bounded by `cache.max_object_size`), never to a client.
 */
export function refreshInBackground(job: BackgroundRefresh): void {
  const { cache, log } = job;
  let ended = false;
  let idle: NodeJS.Timeout | undefined;
  // Declared before the exchange starts: a leg may report an error synchronously.
  let deadline: NodeJS.Timeout | undefined;
  const finish = (outcome: string, error?: GatewayError): void => {
    if (ended) return;
    ended = true;
    clearTimeout(deadline);
    clearTimeout(idle);
    cache.release();
    job.done();
    const fields = { request_id: job.requestId, cache_refresh: outcome, ...(error ? { code: error.code, reason: error.message } : {}) };
    if (error) log.warn(fields, 'background cache refresh failed; the stale entry stays');
    else log.debug(fields, 'background cache refresh ended');
  };
  const exchange = job.leg.start(
    { ...job.request, headers: cache.upstreamRequestHeaders([...job.request.headers]) },
    {
      onResponse: (reply) => {
        clearTimeout(deadline);
        if (ended) {
          reply.body.resume();
          return;
        }
        if (cache.revalidated(reply)) {
          finish('revalidated');
          return;
        }
        // A server error says nothing about the resource (RFC 9111 4.3.3): the entry stays.
        if (reply.status >= 500) {
          reply.body.resume();
          finish(`origin answered ${reply.status}`);
          return;
        }
        if (job.rules.response(reply.status, reply.rawHeaders).refusal) {
          exchange.cancel();
          cache.abandon();
          finish('response denied by an HTTP rule; not stored');
          return;
        }
        // The body's only reader: the store's copy is taken by fill() as it passes.
        const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
        cache.fill(reply, sink);
        idle = setTimeout(() => {
          exchange.cancel();
          sink.destroy();
          finish('origin stalled');
        }, job.idleTimeoutMs);
        reply.body.on('data', () => idle?.refresh());
        reply.body.once('close', () => {
          // An origin that reset mid-body: the sink never finishes, so nothing is stored.
          if (!reply.isComplete()) sink.destroy();
        });
        sink.once('close', () => finish(reply.isComplete() ? `stored or replaced (${reply.status})` : 'origin cut the body'));
        reply.body.pipe(sink);
      },
      onUpgrade: (reply) => {
        reply.socket.destroy();
        finish('unexpected upgrade');
      },
      onError: (error) => finish('failed', error),
    },
  );
  exchange.body?.end();
  if (ended) return;
  deadline = setTimeout(() => {
    exchange.cancel();
    finish('timed out', exchange.noResponse(job.responseTimeoutMs));
  }, job.responseTimeoutMs);
}
