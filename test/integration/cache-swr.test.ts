import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';

/**
 * An origin that counts requests per path and can hold them: while `held` is set, requests
 * wait unanswered until `release()` (bounded by the test's own timeouts). Bodies carry the
 * request count and the resource version, so a stored answer is told apart from a fresh one.
 *   /swr?...       max-age=0, stale-while-revalidate=60, ETag "v<version>"; a matching
 *                  If-None-Match gets 304 with X-Refreshed: <count> (0 in the 200)
 *   /swr-short     max-age=0, stale-while-revalidate=1, ETag
 *   /fresh         max-age=60
 *   /etag          max-age=0 with an ETag (stale at once, no stale-while-revalidate)
 */
interface Origin {
  readonly port: number;
  hits(path: string): number;
  lastHeaders(path: string): http.IncomingHttpHeaders | undefined;
  held: boolean;
  version: number;
  failWith: number | null;
  release(): void;
  close(): Promise<void>;
}

/** Plain HTTP/1.1, or with `tls` an HTTP/2 origin (HTTP/1.1 for clients that offer only that). */
async function startOrigin(tls?: { cert: string; key: string }): Promise<Origin> {
  const counts = new Map<string, number>();
  const headers = new Map<string, http.IncomingHttpHeaders>();
  const waiting: (() => void)[] = [];
  const state = { held: false, version: 1, failWith: null as number | null };
  const answer = (req: IncomingMessage, res: ServerResponse, n: number): void => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const send = (status: number, extra: http.OutgoingHttpHeaders, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...extra });
      res.end(body);
    };
    if (state.failWith !== null) return void send(state.failWith, {}, 'origin failing\n');
    const etag = `"v${state.version}"`;
    switch (url.pathname) {
      case '/swr':
      case '/swr-short': {
        const window = url.pathname === '/swr' ? 60 : 1;
        const cc = `max-age=0, stale-while-revalidate=${window}`;
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304, { etag, 'cache-control': cc, 'x-refreshed': String(n) });
          res.end();
          return;
        }
        return void send(200, { 'cache-control': cc, etag, 'x-refreshed': '0' }, `${url.pathname} #${n} v${state.version}\n`);
      }
      case '/fresh':
        return void send(200, { 'cache-control': 'max-age=60' }, `fresh #${n}\n`);
      case '/etag':
        return void send(200, { 'cache-control': 'max-age=0', etag }, `etag #${n}\n`);
      default:
        return void send(404, {}, 'not found\n');
    }
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const key = req.url ?? '/';
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    headers.set(key, req.headers);
    if (state.held) waiting.push(() => answer(req, res, n));
    else answer(req, res, n);
  };
  // The compatibility API takes the same handler (writeHead/end, url, headers).
  const server = tls
    ? http2.createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: true }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits: (path) => counts.get(path) ?? 0,
    lastHeaders: (path) => headers.get(path),
    get held() {
      return state.held;
    },
    set held(value: boolean) {
      state.held = value;
    },
    get version() {
      return state.version;
    },
    set version(value: number) {
      state.version = value;
    },
    get failWith() {
      return state.failWith;
    },
    set failWith(value: number | null) {
      state.failWith = value;
    },
    release() {
      state.held = false;
      for (const go of waiting.splice(0)) go();
    },
    close: () =>
      new Promise<void>((resolve) => {
        state.held = false;
        for (const go of waiting.splice(0)) go();
        if (server instanceof http.Server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const SWR_HIT = /^tollgate; hit; ttl=-?\d+; detail=stale-while-revalidate$/;

describe('HTTP cache: stale-while-revalidate and only-if-cached', () => {
  let gw: TestGateway;
  let origin: Origin;
  let h2: Origin;

  beforeAll(async () => {
    const dir = tempDir('cache-swr');
    const root = issue({ commonName: 'cache swr root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    origin = await startOrigin();
    h2 = await startOrigin({ cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [h2.port], http: [origin.port] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: 'cache:\n  max_size: 1MiB\n  max_object_size: 64KiB\n',
      policies: { 'cache.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n  - match: other.test\n    action: inspect\n    cache: false\n' },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
    await h2.close();
  });

  const get = (path: string, extra: string[] = []) => curl(['-x', gw.proxy, ...extra, `http://origin.test:${origin.port}${path}`]);
  const getOff = (path: string, extra: string[] = []) => curl(['-x', gw.proxy, ...extra, `http://other.test:${origin.port}${path}`]);

  describe('stale-while-revalidate', () => {
    test('within the window every client gets the stale entry at once; one background request refreshes it', async () => {
      const path = '/swr?t=once';
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      // The origin now holds every request: a client answered meanwhile was answered from the store.
      origin.held = true;
      origin.version = 2;
      const replies = await Promise.all([1, 2, 3, 4, 5].map(() => get(path)));
      for (const reply of replies) {
        expect(reply.status).toBe(200);
        expect(reply.body).toBe('/swr #1 v1\n');
        expect(reply.headers['cache-status']).toMatch(SWR_HIT);
        expect(Number(reply.headers.age)).toBeGreaterThanOrEqual(0);
      }
      // Five clients, one refresh (still held at the origin), carrying the entry's validator.
      await eventually(
        () => origin.hits(path),
        (n) => n === 2,
      );
      expect(origin.hits(path)).toBe(2);
      expect(origin.lastHeaders(path)?.['if-none-match']).toBe('"v1"');
      expect(origin.lastHeaders(path)?.['via']).toMatch(/tollgate/);
      origin.release();
      // The refresh got v2 (a 200): it replaces the entry, which the next client is served.
      const next = await eventually(
        () => get(path),
        (r) => r.body === '/swr #2 v2\n',
      );
      expect(next.body).toBe('/swr #2 v2\n');
      expect(next.headers['cache-status']).toMatch(SWR_HIT);
      const records = await eventually(
        () => gw.requestRecords(path),
        (r) => r.length >= 7,
      );
      expect(records.slice(0, 6).map((r) => r.cache)).toEqual([
        'miss',
        'stale-while-revalidate',
        'stale-while-revalidate',
        'stale-while-revalidate',
        'stale-while-revalidate',
        'stale-while-revalidate',
      ]);
      expect(records.every((r) => r.status === 200 && r.error === null)).toBe(true);
    });

    test('inspected HTTPS over HTTP/2 both ways: served stale at once, refreshed once over the h2 leg', async () => {
      const path = '/swr?t=h2';
      const get2 = () => curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${h2.port}${path}`]);
      h2.version = 1;
      expect((await get2()).body).toBe('/swr #1 v1\n');
      h2.held = true;
      h2.version = 2;
      const replies = await Promise.all([1, 2, 3].map(() => get2()));
      expect(replies.map((r) => r.body)).toEqual(Array(3).fill('/swr #1 v1\n'));
      expect(replies.every((r) => SWR_HIT.test(r.headers['cache-status'] ?? ''))).toBe(true);
      await eventually(
        () => h2.hits(path),
        (n) => n === 2,
      );
      expect(h2.hits(path)).toBe(2);
      expect(h2.lastHeaders(path)?.['if-none-match']).toBe('"v1"');
      // HTTP/2 on the origin side: the refresh carried pseudo-header fields.
      expect(h2.lastHeaders(path)?.[':method']).toBe('GET');
      h2.release();
      const next = await eventually(get2, (r) => r.body === '/swr #2 v2\n');
      expect(next.body).toBe('/swr #2 v2\n');
    });

    test('a 304 to the background refresh keeps the entry and refreshes its fields', async () => {
      const path = '/swr?t=304';
      origin.version = 1;
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      // The refresh's 304 carried X-Refreshed: 2, merged into the stored response.
      const refreshed = await eventually(
        () => get(path),
        (r) => r.headers['x-refreshed'] !== '0',
      );
      expect(refreshed.body).toBe('/swr #1 v1\n');
      expect(refreshed.headers['x-refreshed']).toBe('2');
      expect(refreshed.headers['cache-status']).toMatch(SWR_HIT);
    });

    test('a failing refresh leaves the entry: it is still served stale within the window', async () => {
      const path = '/swr?t=fail';
      origin.version = 1;
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      origin.failWith = 503;
      try {
        for (let i = 0; i < 3; i++) {
          const reply = await get(path);
          expect(reply.status).toBe(200);
          expect(reply.body).toBe('/swr #1 v1\n');
          expect(reply.headers['cache-status']).toMatch(SWR_HIT);
          // Each refresh ends (with the 503) before the next request: one refresh per stale answer.
          await eventually(
            () => origin.hits(path),
            (n) => n === i + 2,
          );
          expect(origin.hits(path)).toBe(i + 2);
        }
      } finally {
        origin.failWith = null;
      }
      const failures = await eventually(
        () => gw.logs().filter((l) => l.cache_refresh === 'origin answered 503'),
        (l) => l.length >= 3,
      );
      expect(failures.length).toBeGreaterThanOrEqual(3);
      // The origin is back: the next refresh (a 304 to the entry's validator) confirms the entry.
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      const confirmed = await eventually(
        () => gw.logs().filter((l) => l.cache_refresh === 'revalidated' && failures.every((f) => f.request_id !== l.request_id)),
        (l) => l.length > 0,
      );
      expect(confirmed.length).toBeGreaterThan(0);
      expect(origin.hits(path)).toBe(5);
    });

    test('past the window the client waits for the revalidation, as without the directive', async () => {
      const path = '/swr-short';
      origin.version = 1;
      expect((await get(path)).body).toBe('/swr-short #1 v1\n');
      await new Promise((resolve) => setTimeout(resolve, 1300));
      origin.version = 3;
      const reply = await get(path);
      expect(reply.body).toBe('/swr-short #2 v3\n');
      expect(reply.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=200/);
    });

    test('a credentialed request in the window revalidates itself; no refresh carries its credentials', async () => {
      const path = '/swr?t=auth';
      origin.version = 1;
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      const reply = await get(path, ['-H', 'Cookie: session=abc']);
      expect(reply.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=304/);
      expect(origin.hits(path)).toBe(2);
    });
  });

  describe('only-if-cached', () => {
    test('a miss is answered 504 without contacting the origin', async () => {
      const path = '/fresh?t=oic-miss';
      const reply = await get(path, ['-H', 'Cache-Control: only-if-cached']);
      expect(reply.status).toBe(504);
      expect(reply.body).toMatch(/only-if-cached/);
      expect(reply.headers['cache-status']).toBe('tollgate; detail=only-if-cached');
      expect(origin.hits(path)).toBe(0);
      const [record] = await eventually(
        () => gw.requestRecords(path),
        (r) => r.length === 1,
      );
      expect(record).toMatchObject({ status: 504, cache: 'miss', error: null });
      expect(gw.logs().some((l) => l.request_id === record!.request_id && String(l.msg).includes('only-if-cached'))).toBe(true);
    });

    test('with the cache off for the destination (cache: false) every only-if-cached request is 504', async () => {
      const path = '/fresh?t=oic-off';
      expect((await getOff(path)).body).toBe('fresh #1\n');
      const reply = await getOff(path, ['-H', 'Cache-Control: only-if-cached']);
      expect(reply.status).toBe(504);
      expect(origin.hits(path)).toBe(1);
    });

    test('a hit is answered from the store', async () => {
      const path = '/fresh?t=oic-hit';
      expect((await get(path)).body).toBe('fresh #1\n');
      const reply = await get(path, ['-H', 'Cache-Control: only-if-cached']);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('fresh #1\n');
      expect(reply.headers['cache-status']).toMatch(/^tollgate; hit/);
      expect(origin.hits(path)).toBe(1);
    });

    test('a stale entry that needs revalidation is not revalidated: 504', async () => {
      const path = '/etag?t=oic-stale';
      expect((await get(path)).body).toBe('etag #1\n');
      const reply = await get(path, ['-H', 'Cache-Control: only-if-cached']);
      expect(reply.status).toBe(504);
      expect(origin.hits(path)).toBe(1);
    });

    test('within stale-while-revalidate the stale entry answers, and no refresh is started for it', async () => {
      const path = '/swr?t=oic';
      origin.version = 1;
      expect((await get(path)).body).toBe('/swr #1 v1\n');
      const reply = await get(path, ['-H', 'Cache-Control: only-if-cached']);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('/swr #1 v1\n');
      expect(reply.headers['cache-status']).toMatch(SWR_HIT);
      // A later request without the directive does start one: the control that refreshes happen here.
      await get(path);
      await eventually(
        () => origin.hits(path),
        (n) => n === 2,
      );
      expect(origin.hits(path)).toBe(2);
      // Had the only-if-cached request started a refresh too, a third request would follow.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(origin.hits(path)).toBe(2);
    });
  });
});
