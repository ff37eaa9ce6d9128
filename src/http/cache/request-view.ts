import type CachePolicy from 'http-cache-semantics';
import { hostAuthorityText } from '../../protocol/host';
import type { RequestContext } from '../request-context';

/** What the cache keys a request by, and what it keeps of one. */

/**
 * Cache key: scheme, the origin's name as its connection is verified for (the SNI sent to it;
 * the target when there is none) and port, the policy rule that governed the request, then the
 * path and query. The name is the one every authority in the request was checked against
 * (checkRequestAuthority), so no Host can file a response under another name; the rule keeps
 * apart responses fetched under different rules (different groups, different header edits).
 * A reverse-proxied request adds the application it was for: one backend may serve many (a
 * wildcard route), and one application's responses must never answer another's requests.
 */
export function cacheKey(ctx: RequestContext, path: string): string {
  const name = ctx.servername ?? hostAuthorityText(ctx.target.host);
  const application = ctx.publicAuthority === undefined ? '' : `|for ${ctx.publicAuthority}`;
  return `${ctx.scheme}://${name}:${ctx.target.port}|${ctx.decision.rule?.id ?? '(default)'}${application}|${path}`;
}

/**
 * A raw field list as the lower-case header object http-cache-semantics reads, repeated fields
 * joined as RFC 9110 5.3 allows. HTTP/2 pseudo-header fields never get here: the list is the
 * HTTP/1.1 form the origin is sent.
 */
export function headerObject(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const existing = out[name];
    out[name] = existing === undefined ? raw[i + 1]! : `${existing}${name === 'cookie' ? '; ' : ', '}${raw[i + 1]!}`;
  }
  return out;
}

/** Request fields http-cache-semantics reads besides those a response's Vary names. */
const POLICY_REQUEST_FIELDS = ['host', 'cache-control', 'pragma'];

/**
 * The request as it is kept with a stored response: only the fields the policy needs later, so
 * a user's Cookie or Authorization is not held in memory for the lifetime of an entry. The
 * policy only asks whether Authorization was present, unless the response varies on it.
 */
export function retainedRequest(request: CachePolicy.Request, vary: readonly string[]): CachePolicy.Request {
  const headers: CachePolicy.Headers = {};
  for (const name of [...POLICY_REQUEST_FIELDS, ...vary]) {
    const value = request.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  if (request.headers.authorization !== undefined && headers.authorization === undefined) headers.authorization = 'present';
  return { ...request, headers };
}
