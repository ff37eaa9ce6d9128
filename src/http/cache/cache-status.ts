/**
 * The Cache-Status response field (RFC 9211): one list member per cache that handled the
 * response, the one closest to the client last — so ours is appended after any the origin's
 * own caches added. The cache is named by the gateway's `http.via` pseudonym.
 */

/** `stale`: a stale entry served because the origin failed (stale-if-error, RFC 5861). */
export type CacheOutcome = 'hit' | 'miss' | 'revalidated' | 'stale' | 'stale-while-revalidate' | 'bypass';

/** RFC 9211 `fwd` values the gateway uses: why the request went to the origin. */
export type ForwardReason = 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'partial';

export interface CacheStatusParams {
  readonly hit?: boolean;
  readonly fwd?: ForwardReason;
  readonly fwdStatus?: number;
  /** Remaining freshness in seconds (may be negative when served stale). */
  readonly ttlSeconds?: number;
  readonly stored?: boolean;
  readonly detail?: string;
}

export function cacheStatusMember(name: string, params: CacheStatusParams): string {
  const parts = [name];
  if (params.hit) parts.push('hit');
  if (params.fwd) parts.push(`fwd=${params.fwd}`);
  if (params.fwdStatus !== undefined) parts.push(`fwd-status=${params.fwdStatus}`);
  if (params.ttlSeconds !== undefined) parts.push(`ttl=${Math.round(params.ttlSeconds)}`);
  if (params.stored) parts.push('stored');
  if (params.detail) parts.push(`detail=${params.detail}`);
  return parts.join('; ');
}

/** Appends our member to a raw header list, after any Cache-Status already present. */
export function appendCacheStatus(rawHeaders: string[], member: string): string[] {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'cache-status') {
      rawHeaders[i + 1] = `${rawHeaders[i + 1]!}, ${member}`;
      return rawHeaders;
    }
  }
  rawHeaders.push('Cache-Status', member);
  return rawHeaders;
}
