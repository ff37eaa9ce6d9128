import { readFileSync } from 'node:fs';
import { startCacheOrigin, type CacheOrigin } from './support/cache-origin';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { h2Request, h2Session } from './support/h2-client';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';

const STALE = /^tollgate; fwd=stale; (?:fwd-status=(\d+); )?ttl=-?\d+; detail=stale-if-error$/;

/**
 * stale-if-error (RFC 5861 section 4): a stale entry whose response allows it answers instead of
 * an origin error (500/502/503/504) or an unreachable origin, within the directive's window.
 */
describe('HTTP cache: stale-if-error', () => {
  let gw: TestGateway;
  let plain: CacheOrigin;
  let h2: CacheOrigin;
  /** Origins that are closed during a test, to be unreachable. */
  let plainGone: CacheOrigin;
  let h2Gone: CacheOrigin;
  let ca: string;

  beforeAll(async () => {
    const dir = tempDir('cache-stale');
    const root = issue({ commonName: 'cache stale root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    plain = await startCacheOrigin();
    plainGone = await startCacheOrigin();
    h2 = await startCacheOrigin({ cert: leaf.certPem, key: leaf.keyPem, h2: true });
    h2Gone = await startCacheOrigin({ cert: leaf.certPem, key: leaf.keyPem, h2: true });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [h2.port, h2Gone.port], http: [plain.port, plainGone.port] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: 'cache:\n  max_size: 512KiB\n  max_object_size: 64KiB\n',
      policies: { 'cache.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw.stop();
    for (const origin of [plain, plainGone, h2, h2Gone]) await origin.close();
  });

  const viaProxy = (origin: CacheOrigin, path: string) => curl(['-x', gw.proxy, `http://origin.test:${origin.port}${path}`]);

  test('a 503 from the origin is answered with the stale entry within the window', async () => {
    const path = '/stale-if-error?w=60&t=503';
    expect((await viaProxy(plain, path)).body).toBe('stale-if-error #1\n');
    plain.failWith = 503;
    try {
      const stale = await viaProxy(plain, path);
      expect(stale.status).toBe(200);
      expect(stale.body).toBe('stale-if-error #1\n');
      expect(stale.headers['cache-status']).toMatch(STALE);
      expect(stale.headers['cache-status']!.match(STALE)![1]).toBe('503');
    } finally {
      plain.failWith = null;
    }
    expect(plain.hits(path)).toBe(2);
    const records = await eventually(
      () => gw.requestRecords(path),
      (r) => r.length === 2,
    );
    expect(records.map((r) => [r.cache, r.status, r.error])).toEqual([
      ['miss', 200, null],
      ['stale', 200, null],
    ]);
    // The entry was kept: the origin's next good answer replaces it as usual.
    const fresh = await viaProxy(plain, path);
    expect(fresh.body).toBe('stale-if-error #3\n');
  });

  test('outside the window the origin error reaches the client', async () => {
    const path = '/stale-if-error?w=1&t=late';
    await viaProxy(plain, path);
    // max-age=0 and stale-if-error=1: after a second the entry may no longer stand in.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    plain.failWith = 503;
    try {
      const late = await viaProxy(plain, path);
      expect(late.status).toBe(503);
      expect(late.body).toBe('origin failing\n');
      expect(late.headers['cache-status']).toBe('tollgate; fwd=stale; fwd-status=503');
    } finally {
      plain.failWith = null;
    }
  });

  test('a response without stale-if-error is never served stale on error', async () => {
    const path = '/etag?sie=none';
    expect((await viaProxy(plain, path)).body).toBe('etag #1\n');
    plain.failWith = 503;
    try {
      const res = await viaProxy(plain, path);
      expect(res.status).toBe(503);
      expect(res.headers['cache-status']).toBe('tollgate; fwd=stale; fwd-status=503');
    } finally {
      plain.failWith = null;
    }
  });

  test('must-revalidate keeps a stale entry from standing in for an error', async () => {
    const path = '/stale-if-error?w=60&mr=1';
    await viaProxy(plain, path);
    plain.failWith = 503;
    try {
      const res = await viaProxy(plain, path);
      expect(res.status).toBe(503);
      expect(res.body).toBe('origin failing\n');
    } finally {
      plain.failWith = null;
    }
  });

  test('an unreachable origin: the stale entry answers, the audit record shows cache stale', async () => {
    const path = '/stale-if-error?w=60&t=gone';
    expect((await viaProxy(plainGone, path)).body).toBe('stale-if-error #1\n');
    await plainGone.close();
    const stale = await viaProxy(plainGone, path);
    expect(stale.status).toBe(200);
    expect(stale.body).toBe('stale-if-error #1\n');
    expect(stale.headers['cache-status']).toMatch(STALE);
    expect(stale.headers['cache-status']).not.toMatch(/fwd-status/);
    const records = await eventually(
      () => gw.requestRecords(path),
      (r) => r.length === 2,
    );
    expect(records.map((r) => [r.cache, r.status, r.error])).toEqual([
      ['miss', 200, null],
      ['stale', 200, null],
    ]);
    // Without a stored response the failure is reported as usual.
    expect((await viaProxy(plainGone, '/stale-if-error?w=60&t=never')).status).toBe(502);
  });

  test('HTTP/2: a 502 from the h2 origin is answered with the stale entry', async () => {
    const { session } = await h2Session(gw.explicitPort, 'origin.test', h2.port, ca);
    try {
      const path = '/stale-if-error?w=60&t=h2';
      expect((await h2Request(session, path)).body).toBe('stale-if-error #1\n');
      expect(h2.lastVersion(path)).toBe('2.0');
      h2.failWith = 502;
      const stale = await h2Request(session, path);
      expect(stale.status).toBe(200);
      expect(stale.body).toBe('stale-if-error #1\n');
      expect(String(stale.headers['cache-status'])).toMatch(STALE);
      expect(h2.hits(path)).toBe(2);
    } finally {
      h2.failWith = null;
      session.close();
    }
  });

  test('HTTP/2: an unreachable h2 origin: the stale entry answers on the client stream', async () => {
    const { session } = await h2Session(gw.explicitPort, 'origin.test', h2Gone.port, ca);
    try {
      const path = '/stale-if-error?w=60&t=h2gone';
      expect((await h2Request(session, path)).body).toBe('stale-if-error #1\n');
      await h2Gone.close();
      const stale = await h2Request(session, path, {}, 5000);
      expect(stale.status).toBe(200);
      expect(stale.body).toBe('stale-if-error #1\n');
      expect(String(stale.headers['cache-status'])).toMatch(STALE);
      const records = await eventually(
        () => gw.requestRecords(path),
        (r) => r.length === 2,
      );
      expect(records.map((r) => [r.cache, r.http_version])).toEqual([
        ['miss', '2.0'],
        ['stale', '2.0'],
      ]);
      // Nothing stored: the client's stream gets 502 promptly, not a hang until the response timeout.
      expect((await h2Request(session, '/stale-if-error?w=60&t=h2never', {}, 5000)).status).toBe(502);
    } finally {
      session.close();
    }
  });
});

describe('HTTP cache: stale-if-error when the origin does not answer in time', () => {
  test('a response timeout is answered with the stale entry', async () => {
    const origin = await startCacheOrigin();
    const gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      upstreamSection: 'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]\n  response_timeout: 1s',
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    });
    try {
      const url = `http://origin.test:${origin.port}/stale-if-error?w=60&t=timeout`;
      expect((await curl(['-x', gw.proxy, url])).body).toBe('stale-if-error #1\n');
      origin.stall = true;
      const started = Date.now();
      const stale = await curl(['-x', gw.proxy, url]);
      expect(stale.status).toBe(200);
      expect(stale.body).toBe('stale-if-error #1\n');
      expect(stale.headers['cache-status']).toMatch(STALE);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(origin.hits('/stale-if-error?w=60&t=timeout')).toBe(2);
    } finally {
      origin.stall = false;
      await gw.stop();
      await origin.close();
    }
  });
});
