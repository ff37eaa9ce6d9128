import type { Writable } from 'node:stream';
import CachePolicy from 'http-cache-semantics';
import type { InboundRequest, InboundResponse } from '../inbound';
import type { RequestContext } from '../request-context';
import { allowsAuthorized, explicitlyShareable, requestDirective, responseDirectives, single, toRawHeaders } from './directives';
import { cacheKey, headerObject, retainedRequest } from './request-view';
import { requestBodyFraming } from '../framing';
import { appendCacheStatus, type CacheOutcome, type CacheStatusParams, cacheStatusMember, type ForwardReason } from './cache-status';
import { hasUnsupportedPrecondition, isNotModified } from './conditional';
import { OriginResponse, type OriginResponseHead, plainlyUnstorable } from './origin-response';
import { type CollapseRole, MissCollapser } from './miss-collapse';
import { ResponseStore, type StoredResponse, varyNames } from './store';

/**
 * The HTTP cache as seen by the one forwarding path (forward.ts). A shared cache per RFC 9111:
 * every freshness, storability, Vary and revalidation judgement is http-cache-semantics' in
 * shared mode; this file only decides which requests take part and moves bytes.
 *
 * Order in forward.ts: request rules -> `open()`/`hit()` (lookup) -> origin -> response rules
 * -> `revalidated()`/`fill()` (store). A request the rules deny never reaches the cache; a
 * response they deny is never handed to `fill()`, and one they rewrite in its body must call
 * `abandon()` so it is not stored. Replies from the store are sent by forward.ts itself, so
 * response rules can apply to them as well.
 *
 * Concurrent misses for one key are collapsed (miss-collapse.ts): the first goes to the origin,
 * the others wait for it, bounded in number and time, and are then served from the store. Only
 * plain GETs take part: never a request with Authorization or Cookie (its response may be that
 * user's), nor one that says `no-store` or `no-cache`. A stale entry within its
 * `stale-while-revalidate` window (RFC 5861 section 3) is served at once and refreshed by one
 * background request per key (`backgroundRefresh()`, carried out by cache-refresh.ts).
 */

export interface HttpCacheOptions {
  readonly enabled: boolean;
  readonly maxSizeBytes: number;
  readonly maxObjectBytes: number;
  /** Cache name in Cache-Status and pseudonym in Via (`http.via`). */
  readonly name: string;
  /** Requests that may wait for another's fetch of the same key (`cache.collapse_max_waiters`); 0 = off. */
  readonly collapseMaxWaiters: number;
  /** How long such a request waits before going to the origin itself (`cache.collapse_max_wait`). */
  readonly collapseMaxWaitMs: number;
}

/** How `HttpCache.open()` treats the request beyond the usual lookup. */
export interface OpenOptions {
  /** False after a collapsed wait: look up again, but do not wait a second time. */
  readonly collapse?: boolean;
  /** A background refresh (stale-while-revalidate): always revalidate, never serve. */
  readonly background?: boolean;
}

/**
 * A response answered from the store, for forward.ts to send like an origin's: the stored
 * fields (Age and Date brought up to date, Content-Length of the stored body), and the body,
 * or null when none is sent (HEAD, 304 to the client's own validator).
 */
export interface StoredReply {
  readonly status: number;
  readonly statusMessage: string;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
  readonly body: Buffer | null;
}

export class HttpCache {
  readonly store: ResponseStore | null;
  readonly collapser: MissCollapser;
  /** Keys with a background refresh in flight: one per key, however many clients are served stale. */
  readonly refreshing = new Set<string>();

  constructor(readonly options: HttpCacheOptions) {
    this.store = options.enabled && options.maxSizeBytes > 0 ? new ResponseStore(options) : null;
    this.collapser = new MissCollapser({ maxWaiters: options.collapseMaxWaiters, maxWaitMs: options.collapseMaxWaitMs });
  }

  /**
   * The request's passage through the cache; null when caching is off (nothing to allocate).
   * `sentHeaders` are the fields the origin will receive (after the rules' edits): a stored
   * response's Vary is matched against what was sent to obtain it, not what the client wrote.
   */
  open(ctx: RequestContext, req: InboundRequest, sentHeaders: readonly string[], options: OpenOptions = {}): CacheExchange | null {
    if (!this.store) return null;
    try {
      return new CacheExchange(this, this.store, this.options.name, ctx, req, sentHeaders, options);
    } catch (err) {
      // The cache is an optimisation: a request it cannot judge is forwarded as if it were off.
      ctx.flow.log.warn({ request_id: ctx.requestId, reason: (err as Error).message }, 'HTTP cache lookup failed; forwarding without the cache');
      return null;
    }
  }
}

type Mode =
  /** Not eligible (policy, Range, preconditions, body): forwarded, never stored. */
  | 'bypass'
  /** POST, PUT, DELETE...: forwarded; a success invalidates the stored URL. */
  | 'unsafe'
  /** Forwarded; the response may be stored. */
  | 'forward'
  /** A stale entry: forwarded with validators; a matching 304 refreshes and serves it. */
  | 'revalidate'
  /** Served from the store. */
  | 'hit'
  /** A stale entry within stale-while-revalidate: served from the store, refreshed in the background. */
  | 'swr';

type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

const SAFE_CACHEABLE = new Set(['GET', 'HEAD']);
const SAFE_OTHER = new Set(['OPTIONS', 'TRACE']);

/** One request's passage through the cache, created by `HttpCache.open()` for each forwarded request. */
export class CacheExchange {
  private mode: Mode;
  private fwd: ForwardReason | undefined;
  private detail: string | undefined;
  private readonly key: string;
  private readonly isHead: boolean;
  private readonly policyRequest: CachePolicy.Request;
  private readonly headers: RequestHeaders;
  private entry: StoredResponse | null = null;
  private validators: CachePolicy.Headers | null = null;
  private abandonFill: (() => void) | null = null;
  private abandoned = false;
  /** Cache-Status of a response served from the store; null = forwarded. */
  private status: CacheStatusParams | null = null;
  /** Set while this exchange leads a collapsed miss: tells the waiters to look again. */
  private settleCollapse: (() => void) | null = null;
  outcome: CacheOutcome;
  /** `Cache-Control: only-if-cached` (RFC 9111 5.2.1.7): answer from the store or with 504, never from the origin. */
  readonly onlyIfCached: boolean;

  constructor(
    private readonly cache: HttpCache,
    private readonly store: ResponseStore,
    private readonly name: string,
    private readonly ctx: RequestContext,
    private readonly req: InboundRequest,
    sentHeaders: readonly string[],
    private readonly openOptions: OpenOptions,
  ) {
    const method = req.method ?? 'GET';
    this.isHead = method === 'HEAD';
    this.key = cacheKey(ctx, req.url ?? '/');
    this.headers = headerObject(sentHeaders);
    this.onlyIfCached = requestDirective(this.headers, 'only-if-cached');
    // HEAD is evaluated as GET: a stored GET response answers it (RFC 9110 9.3.2).
    this.policyRequest = { url: req.url ?? '/', method: 'GET', headers: this.headers };
    this.mode = this.classify(method);
    this.outcome = this.mode === 'hit' ? 'hit' : this.mode === 'swr' ? 'stale-while-revalidate' : this.mode === 'bypass' || this.mode === 'unsafe' ? 'bypass' : 'miss';
  }

  private classify(method: string): Mode {
    const store = this.store;
    if (this.ctx.decision.rule?.cache === false) return this.bypass('bypass', 'policy');
    if (!SAFE_CACHEABLE.has(method)) {
      if (SAFE_OTHER.has(method)) return this.bypass('method');
      this.fwd = 'method';
      return 'unsafe';
    }
    // Range is passed through: partial entries are never stored or served.
    if (this.headers.range !== undefined) return this.bypass('bypass', 'range');
    if (hasUnsupportedPrecondition(this.headers)) return this.bypass('bypass', 'precondition');
    if (requestBodyFraming(this.req).kind !== 'none') return this.bypass('bypass', 'request-body');
    const found = store.lookup(this.key, this.headers);
    if (found.kind !== 'found') {
      this.fwd = found.kind;
      return 'forward';
    }
    const entry = found.entry;
    if (this.headers.authorization !== undefined && !allowsAuthorized(entry)) {
      this.fwd = 'request';
      this.detail = 'authorization';
      return 'forward';
    }
    const evaluation = entry.policy.evaluateRequest(this.policyRequest);
    if (!evaluation.revalidation && !this.openOptions.background) {
      this.entry = entry;
      return 'hit';
    }
    // stale-while-revalidate: http-cache-semantics says the entry may be served while it is
    // revalidated asynchronously. Not for a credentialed request: the refresh runs for everyone
    // and must not carry one user's Authorization or Cookie; such a request revalidates itself.
    if (evaluation.revalidation && !evaluation.revalidation.synchronous && !this.openOptions.background && !this.isCredentialed()) {
      this.entry = entry;
      this.validators = evaluation.revalidation.headers;
      return 'swr';
    }
    if (!evaluation.revalidation) {
      // A background refresh of an entry that is fresh again (another refresh won): revalidate anyway.
      this.entry = entry;
      this.validators = entry.policy.revalidationHeaders(this.policyRequest);
      this.fwd = 'stale';
      return 'revalidate';
    }
    const noCache = /no-cache/i.test(String(this.headers['cache-control'] ?? '')) || /no-cache/i.test(String(this.headers.pragma ?? ''));
    this.fwd = noCache ? 'request' : 'stale';
    if (this.isHead) return 'forward';
    this.entry = entry;
    this.validators = evaluation.revalidation.headers;
    return 'revalidate';
  }

  private bypass(fwd: ForwardReason, detail?: string): Mode {
    this.fwd = fwd;
    this.detail = detail;
    return 'bypass';
  }

  /**
   * CACHE (lookup): the stored response for a fresh hit, or for a stale entry within its
   * stale-while-revalidate window (then call `backgroundRefresh()`); null = go to the origin.
   */
  hit(): StoredReply | null {
    if (!this.entry) return null;
    if (this.mode === 'hit') {
      this.status = { hit: true, ttlSeconds: this.entry.policy.timeToLive() / 1000 };
      return this.reply(this.entry);
    }
    if (this.mode !== 'swr') return null;
    // RFC 9211: a hit with a negative ttl is a stale response served from the cache.
    this.status = { hit: true, ttlSeconds: this.entry.policy.maxAge() - this.entry.policy.age(), detail: 'stale-while-revalidate' };
    return this.reply(this.entry);
  }

  /**
   * CACHE (stale-while-revalidate): after a stale entry was served, claims its key's one
   * background refresh. Returns the sent fields for it (the client's own validators removed),
   * or null when a refresh is already running or none is due. `done` must be called when the
   * refresh ends, however it ends. An only-if-cached client asked for no origin contact.
   */
  backgroundRefresh(sentHeaders: readonly string[]): { readonly headers: string[]; readonly done: () => void } | null {
    if (this.mode !== 'swr' || this.isHead || this.onlyIfCached || this.cache.refreshing.has(this.key)) return null;
    this.cache.refreshing.add(this.key);
    const headers: string[] = [];
    for (let i = 0; i < sentHeaders.length; i += 2) {
      const lower = sentHeaders[i]!.toLowerCase();
      if (lower !== 'if-none-match' && lower !== 'if-modified-since') headers.push(sentHeaders[i]!, sentHeaders[i + 1]!);
    }
    let done = false;
    return {
      headers,
      done: () => {
        if (done) return;
        done = true;
        this.cache.refreshing.delete(this.key);
      },
    };
  }

  /**
   * CACHE (collapse): a plain GET miss either leads (null: go to the origin, the others wait for
   * this exchange) or waits for the leader (a promise; then open the cache again with
   * `collapse: false`). Null also when the request may not take part.
   */
  collapse(): Promise<unknown> | null {
    if (!this.mayCollapse()) return null;
    const role: CollapseRole = this.cache.collapser.join(this.key);
    if (role.kind === 'lead') {
      this.settleCollapse = role.settle;
      return null;
    }
    return role.kind === 'wait' ? role.done : null;
  }

  /** CACHE (only-if-cached): nothing stored can answer; the 504 says why in Cache-Status. */
  onlyIfCachedMiss(): void {
    this.status = { detail: 'only-if-cached' };
    this.outcome = 'miss';
  }

  /** The exchange is over (its response ended, failed or was refused): waiters look again. */
  release(): void {
    this.settleCollapse?.();
    this.settleCollapse = null;
  }

  private mayCollapse(): boolean {
    if (this.mode !== 'forward' || this.isHead || this.req.method !== 'GET' || this.openOptions.collapse === false || this.openOptions.background) return false;
    if (this.isCredentialed()) return false;
    return !requestDirective(this.headers, 'no-store') && !requestDirective(this.headers, 'no-cache') && !/no-cache/i.test(String(this.headers.pragma ?? ''));
  }

  private isCredentialed(): boolean {
    return this.headers.authorization !== undefined || this.headers.cookie !== undefined;
  }

  /** CACHE (revalidation): the validators of the stored entry replace the client's own. */
  upstreamRequestHeaders(raw: string[]): string[] {
    if (this.mode !== 'revalidate' || !this.validators) return raw;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (lower !== 'if-none-match' && lower !== 'if-modified-since') out.push(raw[i]!, raw[i + 1]!);
    }
    for (const name of ['if-none-match', 'if-modified-since']) {
      const value = this.validators[name];
      if (typeof value === 'string') out.push(name, value);
    }
    return out;
  }

  /**
   * CACHE (revalidation answer): a 304 that matches the stored entry refreshes it; the stored
   * response is returned to be served instead. Null = send the origin's response.
   */
  revalidated(reply: OriginResponseHead): StoredReply | null {
    if (this.mode !== 'revalidate' || !this.entry || reply.status !== 304) return null;
    const upRes = new OriginResponse(reply);
    const vary = varyNames([this.entry.policy.toObject().resh['vary'], upRes.headers['vary']].filter((v) => v !== undefined).join(','));
    const { policy, matches } = this.entry.policy.revalidatedPolicy(retainedRequest(this.policyRequest, vary), { status: 304, headers: upRes.headers });
    const clientConditional = this.headers['if-none-match'] !== undefined || this.headers['if-modified-since'] !== undefined;
    // A 304 that does not select our entry (RFC 9111 4.3.4) may answer the client's own
    // validator: pass it on. Without a client validator it can only be about ours, so the stored
    // body is served, but the entry is not refreshed from it.
    if (!matches && clientConditional) return null;
    upRes.body.resume();
    const served: StoredResponse = matches ? { ...this.entry, policy } : this.entry;
    if (matches) {
      // The 304's fields are merged into the entry: a Set-Cookie there is for this client only.
      if (policy.storable() && upRes.headers['set-cookie'] === undefined) this.store.put(this.key, this.headers, served);
      else this.store.invalidate(this.key);
    }
    this.outcome = 'revalidated';
    this.status = { fwd: 'stale', fwdStatus: 304, ttlSeconds: served.policy.timeToLive() / 1000 };
    return this.reply(served);
  }

  /**
   * CACHE (stale-if-error, RFC 5861 section 4): while a stale entry was being revalidated the
   * origin could not be reached or timed out (`status` null) or answered 500, 502, 503 or 504.
   * Within the entry's `stale-if-error` window the stored response is served instead; the window
   * arithmetic is http-cache-semantics' (an error answer to `revalidatedPolicy`). Never for
   * `must-revalidate`/`proxy-revalidate` (RFC 9111 5.2.2.2, 5.2.2.8). Null = the error stands.
   */
  staleIfError(status: number | null): StoredReply | null {
    if (this.mode !== 'revalidate' || !this.entry || (status !== null && status < 500)) return null;
    const entry = this.entry;
    const cc = responseDirectives(entry);
    if (cc['must-revalidate'] !== undefined || cc['proxy-revalidate'] !== undefined) return null;
    // An unreachable origin counts as 504, one of the error answers the library honours.
    const { matches, modified } = entry.policy.revalidatedPolicy(retainedRequest(this.policyRequest, []), { status: status ?? 504, headers: {} });
    if (!matches || modified) return null;
    this.outcome = 'stale';
    const ttlSeconds = entry.policy.maxAge() - entry.policy.age();
    this.status = status === null ? { fwd: 'stale', ttlSeconds, detail: 'stale-if-error' } : { fwd: 'stale', fwdStatus: status, ttlSeconds, detail: 'stale-if-error' };
    return this.reply(entry);
  }

  /** CACHE (status): adds our Cache-Status member to the headers of the response sent, stored or forwarded. */
  responseHeaders(raw: string[], status: number): string[] {
    return appendCacheStatus(raw, cacheStatusMember(this.name, this.status ?? { fwd: this.fwd ?? 'miss', fwdStatus: status, detail: this.detail }));
  }

  /**
   * CACHE (store): tees a forwarded response into the store while it streams to the client. It
   * enters the store only when the origin sent it completely, the client received it all, and it
   * stayed within `max_object_size`; anything else (client abort, origin reset, too large,
   * `abandon()`) leaves no entry. Call before piping the body to `res`.
   */
  fill(reply: OriginResponseHead, res: InboundResponse | Writable): void {
    const store = this.store;
    const status = reply.status;
    if (this.mode === 'unsafe') {
      // RFC 9111 section 4.4: a non-error response to an unsafe method invalidates the URL.
      if (status >= 200 && status < 400) store.invalidate(this.key);
      return;
    }
    if ((this.mode !== 'forward' && this.mode !== 'revalidate') || this.isHead) return;
    // Most responses say plainly that they may not be kept: no policy object is built for them.
    if (plainlyUnstorable(reply.rawHeaders)) {
      this.replaced(status);
      this.cache.collapser.notStored(this.key);
      this.release();
      return;
    }
    const upRes = new OriginResponse(reply);
    let policy: CachePolicy;
    try {
      policy = new CachePolicy(retainedRequest(this.policyRequest, varyNames(single(upRes.headers['vary']))), { status, headers: upRes.headers }, { shared: true });
    } catch (err) {
      this.ctx.flow.log.warn({ request_id: this.ctx.requestId, reason: (err as Error).message }, 'HTTP cache cannot judge this response; not stored');
      this.release();
      return;
    }
    if (!this.isStorable(policy, upRes.headers, status)) {
      this.replaced(status);
      this.cache.collapser.notStored(this.key);
      this.release();
      return;
    }
    const length = single(upRes.headers['content-length']);
    const declared = length === undefined ? null : Number(length);
    const maxObject = store.options.maxObjectBytes;
    if (declared !== null && (!Number.isSafeInteger(declared) || declared > maxObject)) {
      this.cache.collapser.notStored(this.key);
      this.release();
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const stop = (): void => {
      if (done) return;
      done = true;
      store.releaseFill(bytes);
      chunks.length = 0;
    };
    this.abandonFill = stop;
    upRes.body.on('data', (chunk: Buffer) => {
      if (done) return;
      if (bytes + chunk.length > maxObject || !store.reserveFill(chunk.length)) {
        stop();
        return;
      }
      bytes += chunk.length;
      chunks.push(chunk);
    });
    res.once('finish', () => {
      if (done) return;
      const complete = upRes.isComplete() && (declared === null || declared === bytes) && !this.abandoned;
      if (complete) {
        // One exact-size copy: chunks are slices of larger socket buffers that must not be pinned.
        const body = Buffer.allocUnsafeSlow(bytes);
        let at = 0;
        for (const chunk of chunks) at += chunk.copy(body, at);
        store.put(this.key, this.headers, { policy, status, statusMessage: upRes.statusMessage, httpVersion: upRes.httpVersion, body });
        this.cache.collapser.stored(this.key);
      }
      stop();
      this.release();
    });
    res.once('close', () => {
      stop();
      this.release();
    });
  }

  /**
   * A new response that may not be kept replaced the one we held: the old one is outdated. A
   * server error says nothing about the resource (RFC 9111 4.3.3): the entry stays.
   */
  private replaced(status: number): void {
    if (this.mode === 'revalidate' && status < 500) this.store.invalidate(this.key);
  }

  /** Keeps the response of this exchange out of the store (response rules denied or rewrote it). */
  abandon(): void {
    this.abandoned = true;
    this.abandonFill?.();
    this.release();
  }

  private isStorable(policy: CachePolicy, headers: CachePolicy.Headers, status: number): boolean {
    if (!policy.storable() || status === 206) return false;
    // A shared cache must not hand one user's session cookie to the next (http-cache-semantics
    // would store it and only refuse freshness; a 304 would then replay the cookie).
    if (headers['set-cookie'] !== undefined) return false;
    // Fetched with a user's Cookie: kept only when the origin says it is for everyone.
    if (this.headers.cookie !== undefined && !explicitlyShareable(policy.toObject().rescc as Record<string, string | boolean>)) return false;
    if (varyNames(single(headers['vary'])).includes('*')) return false;
    // Keep immediately-stale responses only when they can be revalidated cheaply.
    return policy.timeToLive() > 0 || headers.etag !== undefined || headers['last-modified'] !== undefined;
  }

  private reply(entry: StoredResponse): StoredReply {
    const stored = entry.policy.responseHeaders();
    const notModified = entry.status === 200 && isNotModified(this.headers, stored);
    const status = notModified ? 304 : entry.status;
    const rawHeaders = toRawHeaders(stored);
    const withBody = !notModified && status !== 204 && status !== 304;
    if (withBody) rawHeaders.push('content-length', String(entry.body.length));
    return {
      status,
      statusMessage: notModified ? 'Not Modified' : entry.statusMessage,
      httpVersion: entry.httpVersion,
      rawHeaders,
      body: withBody && !this.isHead ? entry.body : null,
    };
  }
}
