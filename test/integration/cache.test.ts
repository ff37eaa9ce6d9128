import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import type { RequestRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import { formatRuleTable } from '../../src/policy/rule-table';
import { startCacheOrigin, type CacheOrigin } from './support/cache-origin';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { curl, run } from './support/run';

const MAX_SIZE = 512 * 1024;
const MAX_OBJECT = 64 * 1024;

describe('HTTP cache: plain proxied HTTP and inspected HTTPS', () => {
  let gw: TestGateway;
  let plain: CacheOrigin;
  let secure: CacheOrigin;

  beforeAll(async () => {
    const dir = tempDir('cache');
    const root = issue({ commonName: 'cache test root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'nocache.test'], issuer: root });
    plain = await startCacheOrigin();
    secure = await startCacheOrigin({ cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [secure.port], http: [plain.port] },
      hostNames: ['nocache.test'],
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: `cache:\n  max_size: ${MAX_SIZE}\n  max_object_size: ${MAX_OBJECT}\n`,
      policies: {
        'cache.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n  - match: nocache.test\n    action: inspect\n    cache: false\n',
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await secure.close();
  });

  const viaProxy = (path: string, args: string[] = []) => curl(['-x', gw.proxy, ...args, `http://origin.test:${plain.port}${path}`]);
  const viaTunnel = (path: string, args: string[] = []) => curl(['-x', gw.proxy, '--cacert', gw.caFile, ...args, `https://origin.test:${secure.port}${path}`]);

  test('plain HTTP: a max-age response fetched twice reaches the origin once', async () => {
    const first = await viaProxy('/max-age');
    const second = await viaProxy('/max-age');
    expect(first.status).toBe(200);
    expect(first.body).toBe('max-age #1\n');
    expect(first.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
    expect(second.body).toBe('max-age #1\n');
    expect(second.headers['cache-status']).toMatch(/^tollgate; hit; ttl=\d+$/);
    expect(second.headers['age']).toMatch(/^\d+$/);
    expect(plain.hits('/max-age')).toBe(1);
    const records = await eventually(
      () => gw.requestRecords('/max-age'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => r.cache)).toEqual(['miss', 'hit']);
  });

  test('hits keep the client connection usable: several on one keep-alive connection', async () => {
    const url = `http://origin.test:${plain.port}/max-age?keepalive=1`;
    const res = await curl(['-x', gw.proxy, url, url, url]);
    expect(res.exitCode).toBe(0);
    expect(res.body.match(/max-age #1\n/g)).toHaveLength(3);
    expect(res.body).not.toMatch(/#2/);
    const tunnelled = `https://origin.test:${secure.port}/max-age?keepalive=1`;
    const inside = await curl(['-x', gw.proxy, '--cacert', gw.caFile, tunnelled, tunnelled]);
    expect(inside.exitCode).toBe(0);
    expect(inside.body.match(/max-age #1\n/g)).toHaveLength(2);
    expect(plain.hits('/max-age?keepalive=1')).toBe(1);
    expect(secure.hits('/max-age?keepalive=1')).toBe(1);
    const records = await eventually(
      () => gw.requestRecords('/max-age?keepalive=1'),
      (r) => r.length === 5,
    );
    // One client connection each: the hits did not close it.
    expect(new Set(records.filter((r) => r.scheme === 'http').map((r) => r.flow_id)).size).toBe(1);
    expect(new Set(records.filter((r) => r.scheme === 'https').map((r) => r.flow_id)).size).toBe(1);
  });

  test('inspected HTTPS: a max-age response fetched twice reaches the origin once', async () => {
    const first = await viaTunnel('/max-age');
    const second = await viaTunnel('/max-age');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.body).toBe('max-age #1\n');
    expect(second.headers['cache-status']).toMatch(/^tollgate; hit/);
    expect(secure.hits('/max-age')).toBe(1);
  });

  test('python urllib through the explicit proxy is served from the cache too', async () => {
    const script = [
      'import sys, urllib.request',
      `opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "${gw.proxy}"}))`,
      'for _ in range(2):',
      `    r = opener.open("http://origin.test:${plain.port}/public?py=1", timeout=10)`,
      '    print(r.status, r.headers.get("Cache-Status"), r.read().decode().strip())',
    ].join('\n');
    const result = await run('python3', ['-c', script]);
    expect(result.code).toBe(0);
    const lines = result.stdout.toString().trim().split('\n');
    expect(lines[0]).toBe('200 tollgate; fwd=uri-miss; fwd-status=200 public #1 for nobody');
    expect(lines[1]).toMatch(/^200 tollgate; hit; ttl=\d+ public #1 for nobody$/);
    expect(plain.hits('/public?py=1')).toBe(1);
  });

  test('python urllib through an inspected tunnel: hit, then revalidated', async () => {
    const script = [
      'import ssl, urllib.request',
      `ctx = ssl.create_default_context(cafile="${gw.caFile}")`,
      `opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": "${gw.proxy}"}), urllib.request.HTTPSHandler(context=ctx))`,
      'for path in ["/public?py=2", "/public?py=2", "/etag?py=2", "/etag?py=2"]:',
      `    r = opener.open("https://origin.test:${secure.port}" + path, timeout=10)`,
      '    print(r.status, r.headers.get("Cache-Status"), r.read().decode().strip())',
    ].join('\n');
    const result = await run('python3', ['-c', script]);
    expect(result.stderr).toBe('');
    const lines = result.stdout.toString().trim().split('\n');
    expect(lines[1]).toMatch(/^200 tollgate; hit; ttl=\d+ public #1 for nobody$/);
    expect(lines[3]).toMatch(/^200 tollgate; fwd=stale; fwd-status=304; ttl=0 etag #1$/);
    expect(secure.hits('/public?py=2')).toBe(1);
    expect(secure.hits('/etag?py=2')).toBe(2);
  });

  test('no-store and private responses are fetched from the origin every time', async () => {
    for (const path of ['/no-store', '/private']) {
      const a = await viaProxy(path);
      const b = await viaProxy(path);
      expect(b.body).toBe(`${path.slice(1)} #2\n`);
      expect(a.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
      expect(b.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
      expect(plain.hits(path)).toBe(2);
    }
  });

  test('a response setting a cookie is never stored', async () => {
    await viaProxy('/cookie');
    const again = await viaProxy('/cookie');
    expect(again.body).toBe('cookie #2\n');
    expect(plain.hits('/cookie')).toBe(2);
  });

  test("Authorization: never answered with another request's stored response", async () => {
    // Stored from an anonymous request ...
    await viaTunnel('/max-age?auth=1');
    expect((await viaTunnel('/max-age?auth=1')).headers['cache-status']).toMatch(/hit/);
    // ... but an authorised request for it goes to the origin.
    const alice = await viaTunnel('/max-age?auth=1', ['-H', 'Authorization: Bearer alice']);
    expect(alice.body).toBe('max-age #2\n');
    expect(alice.headers['cache-status']).toBe('tollgate; fwd=request; fwd-status=200; detail=authorization');
    // An authorised response without public/s-maxage is not stored for the next user.
    await viaTunnel('/max-age?auth=2', ['-H', 'Authorization: Bearer alice']);
    const bob = await viaTunnel('/max-age?auth=2', ['-H', 'Authorization: Bearer bob']);
    expect(bob.body).toBe('max-age #2\n');
    expect(secure.hits('/max-age?auth=2')).toBe(2);
    // `public` explicitly allows a shared cache to keep it.
    await viaTunnel('/public?auth=3', ['-H', 'Authorization: Bearer alice']);
    const shared = await viaTunnel('/public?auth=3', ['-H', 'Authorization: Bearer bob']);
    expect(shared.headers['cache-status']).toMatch(/hit/);
    expect(secure.hits('/public?auth=3')).toBe(1);
  });

  test('Vary: Accept-Language keeps variants apart', async () => {
    const en = await viaProxy('/vary', ['-H', 'Accept-Language: en']);
    const fr = await viaProxy('/vary', ['-H', 'Accept-Language: fr']);
    const enAgain = await viaProxy('/vary', ['-H', 'Accept-Language: en']);
    const frAgain = await viaProxy('/vary', ['-H', 'Accept-Language: fr']);
    expect(en.body).toBe('vary #1 lang=en\n');
    expect(fr.body).toBe('vary #2 lang=fr\n');
    expect(fr.headers['cache-status']).toBe('tollgate; fwd=vary-miss; fwd-status=200');
    expect(enAgain.body).toBe('vary #1 lang=en\n');
    expect(frAgain.body).toBe('vary #2 lang=fr\n');
    expect(enAgain.headers['cache-status']).toMatch(/hit/);
    expect(plain.hits('/vary')).toBe(2);
  });

  test('a stale entry is revalidated with If-None-Match and a 304 refreshes it', async () => {
    const first = await viaTunnel('/etag');
    const second = await viaTunnel('/etag');
    expect(first.body).toBe('etag #1\n');
    expect(second.status).toBe(200);
    expect(second.body).toBe('etag #1\n');
    expect(second.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=304/);
    expect(secure.hits('/etag')).toBe(2);
    expect(secure.lastHeaders('/etag')?.['if-none-match']).toBe('"v1"');
    const records = await eventually(
      () => gw.requestRecords('/etag'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => r.cache)).toEqual(['miss', 'revalidated']);
    // The client's own validator that matches the stored entry gets a 304 from the gateway.
    const conditional = await viaTunnel('/etag', ['-H', 'If-None-Match: "v1"']);
    expect(conditional.status).toBe(304);
  });

  test('a changed resource answers the revalidation with 200, which replaces the entry', async () => {
    expect((await viaTunnel('/versioned')).body).toBe('versioned v1 #1\n');
    secure.version = 2;
    const changed = await viaTunnel('/versioned');
    expect(changed.body).toBe('versioned v2 #2\n');
    expect(changed.headers['cache-status']).toBe('tollgate; fwd=stale; fwd-status=200');
    const confirmed = await viaTunnel('/versioned');
    expect(confirmed.body).toBe('versioned v2 #2\n');
    expect(confirmed.headers['cache-status']).toMatch(/^tollgate; fwd=stale; fwd-status=304/);
    expect(secure.lastHeaders('/versioned')?.['if-none-match']).toBe('"v2"');
  });

  test('a stale entry with only Last-Modified is revalidated with If-Modified-Since', async () => {
    await viaProxy('/last-modified');
    const second = await viaProxy('/last-modified');
    expect(second.body).toBe('last-modified #1\n');
    expect(second.headers['cache-status']).toMatch(/fwd=stale; fwd-status=304/);
    expect(plain.lastHeaders('/last-modified')?.['if-modified-since']).toBe('Wed, 01 Jan 2025 00:00:00 GMT');
  });

  test('HEAD is answered from a stored GET', async () => {
    await viaProxy('/max-age?head=1');
    const head = await viaProxy('/max-age?head=1', ['-I']);
    expect(head.status).toBe(200);
    expect(head.headers['cache-status']).toMatch(/^tollgate; hit/);
    expect(head.headers['content-length']).toBe(String('max-age #1\n'.length));
    expect(plain.hits('/max-age?head=1')).toBe(1);
  });

  test('Range requests and cache: false destinations bypass the cache', async () => {
    await viaProxy('/max-age?range=1');
    const ranged = await viaProxy('/max-age?range=1', ['-H', 'Range: bytes=0-3']);
    expect(ranged.headers['cache-status']).toBe('tollgate; fwd=bypass; fwd-status=200; detail=range');
    expect(plain.hits('/max-age?range=1')).toBe(2);
    const url = `https://nocache.test:${secure.port}/max-age?policy=1`;
    await curl(['-x', gw.proxy, '--cacert', gw.caFile, url]);
    const again = await curl(['-x', gw.proxy, '--cacert', gw.caFile, url]);
    expect(again.headers['cache-status']).toBe('tollgate; fwd=bypass; fwd-status=200; detail=policy');
    expect(secure.hits('/max-age?policy=1')).toBe(2);
    const records = await eventually(
      () => gw.requestRecords('/max-age?policy=1'),
      (r) => r.length === 2,
    );
    expect(records.map((r) => r.cache)).toEqual(['bypass', 'bypass']);
  });

  test('tollgate check shows which rules keep the cache out', () => {
    const table = formatRuleTable(gw.gateway.policy);
    expect(table).toMatch(/nocache\.test\s+inspect \(no cache\)/);
    expect(table).not.toMatch(/origin\.test\s+inspect \(no cache\)/);
  });

  test('a response over max_object_size streams through but is not stored', async () => {
    const path = `/big?n=${MAX_OBJECT + 1}`;
    const a = await viaProxy(path);
    const b = await viaProxy(path);
    expect([a.body.length, b.body.length]).toEqual([MAX_OBJECT + 1, MAX_OBJECT + 1]);
    expect(plain.hits(path)).toBe(2);
    const fits = `/big?n=${MAX_OBJECT}`;
    await viaProxy(fits);
    expect((await viaProxy(fits)).headers['cache-status']).toMatch(/hit/);
    expect(plain.hits(fits)).toBe(1);
  });

  test('a client aborting mid-body leaves no entry', async () => {
    plain.hold = true;
    const before = gw.gateway.httpCache.store!.stats.entries;
    const socket = net.connect(gw.explicitPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no body bytes within 5 s')), 5000);
      let seen = 0;
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        // Headers and the first part of the body arrived: hang up mid-body.
        if (seen > 1000) {
          clearTimeout(timer);
          socket.destroy();
          resolve();
        }
      });
      socket.write(`GET http://origin.test:${plain.port}/drip HTTP/1.1\r\nHost: origin.test:${plain.port}\r\n\r\n`);
    });
    await eventually(
      () => gw.requestRecords('/drip'),
      (r) => r.length === 1,
    );
    expect(gw.gateway.httpCache.store!.stats.entries).toBe(before);
    expect(gw.gateway.httpCache.store!.stats.fillingBytes).toBe(0);
    plain.hold = false;
    const full = await viaProxy('/drip');
    expect(full.body.length).toBe(50_000);
    expect(full.headers['cache-status']).toBe('tollgate; fwd=uri-miss; fwd-status=200');
    expect(plain.hits('/drip')).toBe(2);
    expect((await viaProxy('/drip')).headers['cache-status']).toMatch(/hit/);
  });

  test('inspected HTTPS: a client aborting mid-body leaves no entry', async () => {
    secure.hold = true;
    const store = gw.gateway.httpCache.store!;
    const before = store.stats.entries;
    const raw = net.connect(gw.explicitPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no body bytes within 5 s')), 5000);
      raw.once('data', (reply: Buffer) => {
        if (!reply.toString().startsWith('HTTP/1.1 200')) return reject(new Error(`CONNECT refused: ${reply.toString()}`));
        const secured = tls.connect({ socket: raw, servername: 'origin.test', ca: readFileSync(gw.caFile) }, () => {
          secured.write(`GET /drip?tls=1 HTTP/1.1\r\nHost: origin.test:${secure.port}\r\n\r\n`);
        });
        let seen = 0;
        secured.on('error', () => undefined);
        secured.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen > 1000) {
            clearTimeout(timer);
            secured.destroy();
            resolve();
          }
        });
      });
      raw.write(`CONNECT origin.test:${secure.port} HTTP/1.1\r\nHost: origin.test:${secure.port}\r\n\r\n`);
    });
    await eventually(
      () => gw.requestRecords('/drip?tls=1'),
      (r) => r.length === 1,
    );
    expect(store.stats.entries).toBe(before);
    expect(store.stats.fillingBytes).toBe(0);
    secure.hold = false;
    const full = await viaTunnel('/drip?tls=1');
    expect(full.body.length).toBe(50_000);
    expect((await viaTunnel('/drip?tls=1')).headers['cache-status']).toMatch(/hit/);
    expect(secure.hits('/drip?tls=1')).toBe(2);
  });

  test('memory stays within max_size after filling with more than that', async () => {
    const store = gw.gateway.httpCache.store!;
    for (let i = 0; i < 16; i++) await viaProxy(`/big?n=${60_000}&fill=${i}`);
    expect(16 * 60_000).toBeGreaterThan(MAX_SIZE);
    expect(store.stats.bytes).toBeLessThanOrEqual(MAX_SIZE);
    expect(store.stats.entries).toBeGreaterThan(0);
    // The most recent is still there; the oldest was evicted.
    expect((await viaProxy(`/big?n=${60_000}&fill=15`)).headers['cache-status']).toMatch(/hit/);
    expect((await viaProxy(`/big?n=${60_000}&fill=0`)).headers['cache-status']).toMatch(/uri-miss/);
  });

  test('an unsafe method invalidates the stored URL', async () => {
    await viaProxy('/max-age?unsafe=1');
    expect((await viaProxy('/max-age?unsafe=1')).headers['cache-status']).toMatch(/hit/);
    const post = await viaProxy('/max-age?unsafe=1', ['-X', 'POST', '-d', 'x=1']);
    expect(post.headers['cache-status']).toBe('tollgate; fwd=method; fwd-status=200');
    expect((await viaProxy('/max-age?unsafe=1')).headers['cache-status']).toMatch(/uri-miss/);
  });

  test('tollgate:request:completed carries the cache outcome', async () => {
    const seen: (string | null)[] = [];
    const unsubscribe = subscribe('tollgate:request:completed', (m) => seen.push(m.cache));
    try {
      await viaProxy('/max-age?event=1');
      await viaProxy('/max-age?event=1');
      await eventually(
        () => seen,
        (s) => s.length >= 2,
      );
    } finally {
      unsubscribe();
    }
    expect(seen.slice(0, 2)).toEqual(['miss', 'hit']);
  });
});

describe('HTTP cache and policy order', () => {
  test('concurrent misses are collapsed into one origin request; a stored response is never served once the policy denies', async () => {
    const origin = await startCacheOrigin();
    const gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    });
    try {
      // The origin answers after 800 ms, so all three are in flight together.
      const url = `http://origin.test:${origin.port}/slow`;
      const parallel = await Promise.all([1, 2, 3].map(() => curl(['-x', gw.proxy, url])));
      expect(parallel.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(origin.hits('/slow')).toBe(1);
      expect((await curl(['-x', gw.proxy, url])).headers['cache-status']).toMatch(/hit/);
      writeFileSync(path.join(gw.dir, 'policies/site.yaml'), 'rules:\n  - match: origin.test\n    action: deny\n');
      expect(gw.gateway.reload('test').ok).toBe(true);
      const denied = await curl(['-x', gw.proxy, url]);
      expect(denied.status).toBe(403);
      expect(denied.body).not.toMatch(/slow #/);
      expect(origin.hits('/slow')).toBe(1);
    } finally {
      await gw.stop();
      await origin.close();
    }
  });
});

describe('HTTP cache disabled', () => {
  test('cache.enabled: false: no Cache-Status, audit cache null, every request reaches the origin', async () => {
    const origin = await startCacheOrigin();
    const gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      extraConfig: 'cache:\n  enabled: false\n',
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/max-age`]);
        expect(res.status).toBe(200);
        expect(res.headers['cache-status']).toBeUndefined();
      }
      expect(origin.hits('/max-age')).toBe(2);
      expect(gw.gateway.httpCache.store).toBeNull();
      const records = await eventually(gw.audit, (r) => r.filter((x) => x.type === 'request').length === 2);
      expect(records.filter((r): r is RequestRecord => r.type === 'request').map((r) => r.cache)).toEqual([null, null]);
    } finally {
      await gw.stop();
      await origin.close();
    }
  });
});
