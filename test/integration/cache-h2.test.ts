import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { subscribe } from '../../src/observability/events';
import { startCacheOrigin, type CacheOrigin } from './support/cache-origin';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { h2Request, h2Session } from './support/h2-client';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';

/**
 * One cache for HTTP/1.1 and HTTP/2: inspected tunnels whose client negotiated h2 (and whose
 * origin leg is then HTTP/2 too) use the same store, rules and outcomes as HTTP/1.1 exchanges,
 * and an entry filled over one protocol is served over the other.
 */
describe('HTTP cache over HTTP/2', () => {
  let gw: TestGateway;
  let origin: CacheOrigin;
  let ca: string;

  beforeAll(async () => {
    const dir = tempDir('cache-h2');
    const root = issue({ commonName: 'cache h2 root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    origin = await startCacheOrigin({ cert: leaf.certPem, key: leaf.keyPem, h2: true });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: 'cache:\n  max_size: 512KiB\n  max_object_size: 64KiB\n',
      policies: { 'cache.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (path: string): string => `https://origin.test:${origin.port}${path}`;
  const curlH2 = (path: string, args: string[] = []) => curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, ...args, url(path)]);
  const curlH1 = (path: string, args: string[] = []) => curl(['--http1.1', '-x', gw.proxy, '--cacert', gw.caFile, ...args, url(path)]);

  test('curl --http2: a max-age response fetched twice reaches the h2 origin once', async () => {
    const first = await curlH2('/max-age?c=1');
    const second = await curlH2('/max-age?c=1');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.body).toBe('max-age #1\n');
    expect(first.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
    expect(second.body).toBe('max-age #1\n');
    expect(second.headers['cache-status']).toMatch(/^tollgate; hit; ttl=\d+$/);
    expect(second.headers['age']).toMatch(/^\d+$/);
    expect(origin.hits('/max-age?c=1')).toBe(1);
    expect(origin.lastVersion('/max-age?c=1')).toBe('2.0');
    const records = await eventually(
      () => gw.requestRecords('/max-age?c=1'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => r.cache)).toEqual(['miss', 'hit']);
    expect(records.map((r) => r.http_version)).toEqual(['2.0', '2.0']);
  });

  test('Node http2 client: miss then hit on one session, and the completed event carries the outcome', async () => {
    const seen: (string | null)[] = [];
    const unsubscribe = subscribe('tollgate:request:completed', (m) => seen.push(m.cache));
    const { session, alpn } = await h2Session(gw.explicitPort, 'origin.test', origin.port, ca);
    try {
      expect(alpn).toBe('h2');
      const first = await h2Request(session, '/max-age?node=1');
      const second = await h2Request(session, '/max-age?node=1');
      expect(first.body).toBe('max-age #1\n');
      expect(second.body).toBe('max-age #1\n');
      expect(String(second.headers['cache-status'])).toMatch(/^tollgate; hit/);
      // Stored fields only: no hop-by-hop field reaches an HTTP/2 client (Node would refuse to send it).
      expect(second.headers['connection']).toBeUndefined();
      expect(origin.hits('/max-age?node=1')).toBe(1);
      await eventually(
        () => seen,
        (s) => s.length >= 2,
      );
    } finally {
      unsubscribe();
      session.close();
    }
    expect(seen.slice(0, 2)).toEqual(['miss', 'hit']);
  });

  test('filled over HTTP/1.1, served to an HTTP/2 client', async () => {
    const fill = await curlH1('/max-age?x=h1');
    expect(fill.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
    expect(origin.lastVersion('/max-age?x=h1')).toBe('1.1');
    const hit = await curlH2('/max-age?x=h1');
    expect(hit.status).toBe(200);
    expect(hit.body).toBe('max-age #1\n');
    expect(hit.headers['cache-status']).toMatch(/^tollgate; hit/);
    expect(origin.hits('/max-age?x=h1')).toBe(1);
    const records = await eventually(
      () => gw.requestRecords('/max-age?x=h1'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => [r.http_version, r.cache])).toEqual([
      ['1.1', 'miss'],
      ['2.0', 'hit'],
    ]);
  });

  test('filled over HTTP/2, served to an HTTP/1.1 client', async () => {
    const fill = await curlH2('/max-age?x=h2');
    expect(fill.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
    expect(origin.lastVersion('/max-age?x=h2')).toBe('2.0');
    const hit = await curlH1('/max-age?x=h2');
    expect(hit.exitCode).toBe(0);
    expect(hit.status).toBe(200);
    expect(hit.body).toBe('max-age #1\n');
    expect(hit.headers['cache-status']).toMatch(/^tollgate; hit/);
    expect(hit.headers['content-length']).toBe(String('max-age #1\n'.length));
    expect(Object.keys(hit.headers).some((name) => name.startsWith(':'))).toBe(false);
    expect(origin.hits('/max-age?x=h2')).toBe(1);
  });

  test('a stale entry is revalidated over HTTP/2 and a 304 refreshes it', async () => {
    const first = await curlH2('/etag?r=1');
    const second = await curlH2('/etag?r=1');
    expect(first.body).toBe('etag #1\n');
    expect(second.status).toBe(200);
    expect(second.body).toBe('etag #1\n');
    expect(second.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=304/);
    expect(origin.hits('/etag?r=1')).toBe(2);
    expect(origin.lastHeaders('/etag?r=1')?.['if-none-match']).toBe('"v1"');
    expect(origin.lastVersion('/etag?r=1')).toBe('2.0');
    const records = await eventually(
      () => gw.requestRecords('/etag?r=1'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => r.cache)).toEqual(['miss', 'revalidated']);
    // An HTTP/1.1 client revalidates the entry the HTTP/2 one filled.
    const h1 = await curlH1('/etag?r=1');
    expect(h1.body).toBe('etag #1\n');
    expect(h1.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=304/);
  });

  test('Vary and Authorization work the same over HTTP/2', async () => {
    const { session } = await h2Session(gw.explicitPort, 'origin.test', origin.port, ca);
    try {
      const en = await h2Request(session, '/vary?h2=1', { 'accept-language': 'en' });
      const fr = await h2Request(session, '/vary?h2=1', { 'accept-language': 'fr' });
      const enAgain = await h2Request(session, '/vary?h2=1', { 'accept-language': 'en' });
      expect([en.body, fr.body, enAgain.body]).toEqual(['vary #1 lang=en\n', 'vary #2 lang=fr\n', 'vary #1 lang=en\n']);
      expect(fr.headers['cache-status']).toBe('tollgate; fwd=vary-miss; fwd-status=200');
      expect(String(enAgain.headers['cache-status'])).toMatch(/hit/);
      await h2Request(session, '/max-age?h2auth=1');
      const alice = await h2Request(session, '/max-age?h2auth=1', { authorization: 'Bearer alice' });
      expect(alice.body).toBe('max-age #2\n');
      expect(alice.headers['cache-status']).toBe('tollgate; fwd=request; fwd-status=200; detail=authorization');
    } finally {
      session.close();
    }
  });

  test('a client resetting its stream mid-body leaves no entry', async () => {
    const store = gw.gateway.httpCache.store!;
    const before = store.stats.entries;
    origin.hold = true;
    const { session } = await h2Session(gw.explicitPort, 'origin.test', origin.port, ca);
    try {
      await new Promise<void>((resolve, reject) => {
        const stream = session.request({ ':path': '/drip?h2=1' });
        const timer = setTimeout(() => reject(new Error('no body bytes within 5 s')), 5000);
        let seen = 0;
        stream.on('error', () => undefined);
        stream.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen >= 1000) {
            clearTimeout(timer);
            stream.close(http2.constants.NGHTTP2_CANCEL);
            resolve();
          }
        });
        stream.end();
      });
      await eventually(
        () => gw.requestRecords('/drip?h2=1'),
        (r) => r.length === 1,
      );
      expect(store.stats.entries).toBe(before);
      expect(store.stats.fillingBytes).toBe(0);
      origin.hold = false;
      const full = await h2Request(session, '/drip?h2=1');
      expect(full.body.length).toBe(50_000);
      expect(full.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
      const again = await h2Request(session, '/drip?h2=1');
      expect(String(again.headers['cache-status'])).toMatch(/hit/);
      expect(origin.hits('/drip?h2=1')).toBe(2);
    } finally {
      origin.hold = false;
      session.close();
    }
  });
});
