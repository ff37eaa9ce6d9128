import { appendCacheStatus, cacheStatusMember } from './cache-status';
import { hasUnsupportedPrecondition, isNotModified } from './conditional';

describe('Cache-Status (RFC 9211)', () => {
  test.each([
    [{ hit: true, ttlSeconds: 59.6 }, 'tollgate; hit; ttl=60'],
    [{ fwd: 'uri-miss' as const, fwdStatus: 200 }, 'tollgate; fwd=uri-miss; fwd-status=200'],
    [{ fwd: 'stale' as const, fwdStatus: 304, ttlSeconds: 0 }, 'tollgate; fwd=stale; fwd-status=304; ttl=0'],
    [{ fwd: 'bypass' as const, fwdStatus: 200, detail: 'policy' }, 'tollgate; fwd=bypass; fwd-status=200; detail=policy'],
  ])('%j -> %s', (params, text) => {
    expect(cacheStatusMember('tollgate', params)).toBe(text);
  });

  test('ours goes last, after the members of caches nearer the origin', () => {
    expect(appendCacheStatus(['Content-Type', 'text/plain', 'cache-status', 'OriginCDN; hit'], 'tollgate; hit')).toEqual([
      'Content-Type',
      'text/plain',
      'cache-status',
      'OriginCDN; hit, tollgate; hit',
    ]);
    expect(appendCacheStatus([], 'tollgate; hit')).toEqual(['Cache-Status', 'tollgate; hit']);
  });
});

describe('client conditionals against a stored response', () => {
  const stored = { etag: '"abc"', 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' };
  test.each([
    [{ 'if-none-match': '"abc"' }, true],
    [{ 'if-none-match': 'W/"abc"' }, true],
    [{ 'if-none-match': '"x", "abc"' }, true],
    [{ 'if-none-match': '*' }, true],
    [{ 'if-none-match': '"x"' }, false],
    // If-None-Match present: If-Modified-Since is ignored (RFC 9110 13.2.2).
    [{ 'if-none-match': '"x"', 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' }, false],
    [{ 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' }, true],
    [{ 'if-modified-since': 'Tue, 31 Dec 2024 00:00:00 GMT' }, false],
    [{ 'if-modified-since': 'not a date' }, false],
    [{}, false],
  ])('%j -> %s', (request, expected) => {
    expect(isNotModified(request, stored)).toBe(expected);
  });

  test('If-Match, If-Unmodified-Since and If-Range go to the origin', () => {
    expect(hasUnsupportedPrecondition({ 'if-match': '"a"' })).toBe(true);
    expect(hasUnsupportedPrecondition({ 'if-range': '"a"' })).toBe(true);
    expect(hasUnsupportedPrecondition({ 'if-none-match': '"a"' })).toBe(false);
  });
});
