/**
 * The client's own conditional request evaluated against a stored response (RFC 9110 section
 * 13.2.2, in its order): If-None-Match first, If-Modified-Since only when If-None-Match is
 * absent. Only GET/HEAD reach here, so a match means "304 Not Modified".
 */

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

function single(value: string | readonly string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : (value as string | undefined);
}

/** Weak comparison (RFC 9110 8.8.3.2): W/"x" and "x" are the same entity tag for If-None-Match. */
function opaqueTag(tag: string): string {
  return tag.trim().replace(/^W\//, '');
}

export function isNotModified(request: Headers, stored: Headers): boolean {
  const ifNoneMatch = single(request['if-none-match']);
  if (ifNoneMatch !== undefined) {
    const etag = single(stored['etag']);
    if (ifNoneMatch.trim() === '*') return true;
    if (etag === undefined) return false;
    const wanted = opaqueTag(etag);
    return ifNoneMatch.split(',').some((candidate) => opaqueTag(candidate) === wanted);
  }
  const ifModifiedSince = single(request['if-modified-since']);
  const lastModified = single(stored['last-modified']);
  if (ifModifiedSince === undefined || lastModified === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  const modified = Date.parse(lastModified);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}

/** Preconditions the cache does not evaluate itself: such requests go to the origin. */
export function hasUnsupportedPrecondition(request: Headers): boolean {
  return request['if-match'] !== undefined || request['if-unmodified-since'] !== undefined || request['if-range'] !== undefined;
}
