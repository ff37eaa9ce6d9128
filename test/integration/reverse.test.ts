import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { encodeProxyV2 } from '../../src/protocol/proxy-v2';
import path from 'node:path';
import type { RequestRecord } from '../../src/audit/record-fields';
import { documentedFields, recordFields } from './support/audit-doc';
import { startCacheOrigin, type CacheOrigin } from './support/cache-origin';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { type Origin, startHttpsOrigin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';
import WebSocket from 'ws';
import { startWsOrigin, type WsOrigin } from './support/ws-origins';
import { startTestOrigins, type TestOrigins } from './support/test-origins';

/**
 * The reverse-proxy (ingress) listener with real clients: curl --resolve sends the application's
 * name to the listener, over TLS (HTTP/1.1 and HTTP/2) and cleartext, in front of local HTTP and
 * HTTPS backends the test starts.
 */
const POLICY = `rules:
  - name: apps
    match: [app.example, cache.example, bad.example, new.example, ws.example, .apps.example, .tenants.example]
    action: inspect
    http:
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
        reason: the admin console is internal
    dlp:
      detectors: [aws_access_key_id]
      action: deny
  - name: blocked-app
    match: blocked.example
    action: deny
    reason: this application is closed
`;

type ReverseRecord = RequestRecord & { readonly route: string | null; readonly backend: string | null };

describe('reverse-proxy listener', () => {
  let origins: TestOrigins;
  let cacheOrigin: CacheOrigin;
  let badOrigin: Origin;
  /** A multi-tenant backend: answers per X-Forwarded-Host, cacheable; says so with Vary except on /no-vary. */
  let tenants: http.Server;
  let tenantHits = 0;
  let ws: WsOrigin;
  let gw: TestGateway;
  let tlsPort: number;
  let httpPort: number;
  let caFile: string;
  let certFile: string;
  let keyFile: string;
  let dir: string;
  const names = ['app.example', 'cache.example', 'bad.example', 'blocked.example', 'ws.example', '*.apps.example'];
  let reverseCa: ReturnType<typeof issue>;

  const https = (name: string, urlPath: string, args: string[] = []): ReturnType<typeof curl> =>
    curl(['--cacert', caFile, '--resolve', `${name}:${tlsPort}:127.0.0.1`, ...args, `https://${name}:${tlsPort}${urlPath}`]);
  const plain = (name: string, urlPath: string, args: string[] = []): ReturnType<typeof curl> => curl(['--resolve', `${name}:${httpPort}:127.0.0.1`, ...args, `http://${name}:${httpPort}${urlPath}`]);

  async function recordFor(urlPath: string): Promise<ReverseRecord> {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === urlPath));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === urlPath);
    if (!record) throw new Error(`no audit record for ${urlPath}`);
    return record as ReverseRecord;
  }

  function writeServerCertificate(dnsNames: readonly string[]): void {
    const leaf = issue({ commonName: dnsNames[0]!, dnsNames, issuer: reverseCa });
    // Written aside and renamed, as configuration management replaces files.
    writeFileSync(`${keyFile}.new`, leaf.keyPem);
    writeFileSync(`${certFile}.new`, leaf.certPem);
    renameSync(`${keyFile}.new`, keyFile);
    renameSync(`${certFile}.new`, certFile);
  }

  beforeAll(async () => {
    dir = tempDir('reverse');
    reverseCa = issue({ commonName: 'reverse test CA', isCa: true });
    caFile = writePem(dir, 'reverse-ca.pem', reverseCa.certPem);
    certFile = path.join(dir, 'server.pem');
    keyFile = path.join(dir, 'server.key');
    writeServerCertificate(names);
    origins = await startTestOrigins();
    cacheOrigin = await startCacheOrigin();
    // A backend whose certificate no configured CA vouches for.
    const selfSigned = issue({ commonName: 'bad.test', dnsNames: ['bad.test'] });
    badOrigin = await startHttpsOrigin('bad', { cert: selfSigned.certPem, key: selfSigned.keyPem });
    tenants = http.createServer((req, res) => {
      tenantHits++;
      const body = `tenant ${String(req.headers['x-forwarded-host'])}\n`;
      const vary = req.url === '/no-vary' ? {} : { vary: 'X-Forwarded-Host' };
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60', ...vary });
      res.end(body);
    });
    await new Promise<void>((resolve) => tenants.listen(0, '127.0.0.1', resolve));
    ws = await startWsOrigin();
    const reverse = [
      'reverse:',
      '  certificates:',
      `    - { cert: ${certFile}, key: ${keyFile} }`,
      '  routes:',
      `    - { host: app.example, backend: "http://127.0.0.1:${origins.plain.port}" }`,
      `    - { host: app.example, path_prefix: /secure/, backend: "https://origin.test:${origins.tls.port}", ca_file: ${origins.originCaFile} }`,
      `    - { host: cache.example, backend: "http://127.0.0.1:${cacheOrigin.port}" }`,
      `    - { host: bad.example, backend: "https://bad.test:${badOrigin.port}" }`,
      `    - { host: blocked.example, backend: "http://127.0.0.1:${origins.plain.port}" }`,
      `    - { host: new.example, backend: "http://127.0.0.1:${origins.plain.port}" }`,
      `    - { host: "*.apps.example", backend: "http://127.0.0.1:${origins.plain.port}" }`,
      `    - { host: ws.example, backend: "http://127.0.0.1:${ws.port}" }`,
      `    - { host: "*.tenants.example", backend: "http://127.0.0.1:${(tenants.address() as AddressInfo).port}" }`,
    ].join('\n');
    gw = await startTestGateway({
      listenSection: 'listen:\n  reverse: 127.0.0.1:0\n  reverse_http: 127.0.0.1:0',
      hostNames: ['bad.test'],
      policies: { 'apps.yaml': POLICY },
      extraConfig: reverse,
    });
    tlsPort = gw.gateway.address('reverse')!.port;
    httpPort = gw.gateway.address('reverseHttp')!.port;
  });

  afterAll(async () => {
    await gw?.stop();
    await origins?.close();
    await cacheOrigin?.close();
    await badOrigin?.close();
    await new Promise((resolve) => tenants?.close(resolve));
    await ws?.close();
  });

  test('HTTP/1.1 over TLS reaches the backend, with the forwarding fields replaced', async () => {
    const res = await https('app.example', '/echo?case=h1', ['-H', 'X-Forwarded-For: 6.6.6.6', '-H', 'Forwarded: for=6.6.6.6']);
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-host']).toBe(`app.example:${tlsPort}`);
    expect(seen.headers.forwarded).toBe(`for=127.0.0.1;proto=https;host="app.example:${tlsPort}"`);
    const record = await recordFor('/echo?case=h1');
    expect(record).toMatchObject({ frontend: 'reverse', status: 200, action: 'inspect', rule: 'apps', route: 'app.example/', backend: `http://127.0.0.1:${origins.plain.port}` });
    // Every field of the record, route and backend included, is described in docs/audit.md.
    expect(recordFields(record).filter((f) => !documentedFields().request.has(f))).toEqual([]);
  });

  test('HTTP/2 to the client (curl --http2), HTTP/1.1 to the backend', async () => {
    const res = await https('app.example', '/hello?case=h2', ['--http2']);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from plain\n');
    const record = await recordFor('/hello?case=h2');
    expect(record.http_version).toBe('2.0');
    expect(record.frontend).toBe('reverse');
  });

  test("a client's Connection header cannot remove the forwarding fields the gateway adds", async () => {
    const res = await plain('app.example', '/echo?case=connection-names', ['-H', 'Connection: keep-alive, X-Forwarded-For, Forwarded, X-Forwarded-Host, X-Forwarded-Proto']);
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe(`app.example:${httpPort}`);
    expect(seen.headers.forwarded).toBe(`for=127.0.0.1;proto=http;host="app.example:${httpPort}"`);
  });

  test('the longest path prefix wins: /secure/ goes to the HTTPS backend, verified with its ca_file', async () => {
    const before = origins.tls.seen.length;
    const res = await https('app.example', '/secure/hello');
    // The TLS backend has no such page: its own 404 says the request reached it, path unchanged.
    expect(res.status).toBe(404);
    expect(origins.tls.seen.slice(before).map((s) => s.url)).toEqual(['/secure/hello']);
    expect((await recordFor('/secure/hello')).route).toBe('app.example/secure/');
  });

  test('routes are chosen on the canonical path: dot segments cannot pick the /secure/ backend and leave it there', async () => {
    const tlsBefore = origins.tls.seen.length;
    const plainBefore = origins.plain.seen.length;
    // Into /secure/ and back out: the canonical path is /hello, which the plain backend serves.
    for (const spelling of ['/secure/../hello?case=dots', '/secure/%2e%2e/hello?case=encoded-dots', '/secure;x/../hello?case=params']) {
      const res = await plain('app.example', spelling, ['--path-as-is']);
      expect(res.status).toBe(200);
    }
    // The same over HTTP/2 on the TLS listener.
    const h2 = await https('app.example', '/secure/../hello?case=h2-dots', ['--path-as-is', '--http2']);
    expect(h2.status).toBe(200);
    expect(origins.tls.seen.slice(tlsBefore)).toEqual([]);
    expect(origins.plain.seen.slice(plainBefore)).toHaveLength(4);
    // And the other way: a spelling that reaches /secure/ once resolved goes to the /secure/ backend.
    await plain('app.example', '/public/../secure/hello', ['--path-as-is']);
    expect(origins.tls.seen.slice(tlsBefore).map((s) => s.url)).toEqual(['/public/../secure/hello']);
    // A spelling backends read differently is refused before any routing.
    const slash = await plain('app.example', '/secure/..%2Fhello', ['--path-as-is']);
    expect(slash.status).toBe(400);
    expect(slash.body).toMatch(/cannot be routed: an encoded slash/);
    expect(origins.tls.seen.slice(tlsBefore)).toHaveLength(1);
  });

  test('a wildcard route serves one more label', async () => {
    const res = await https('one.apps.example', '/hello?case=wild');
    expect(res.status).toBe(200);
    expect((await recordFor('/hello?case=wild')).route).toBe('*.apps.example/');
  });

  test('cleartext listener: same routes, X-Forwarded-Proto http', async () => {
    const res = await plain('app.example', '/echo?case=plain');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { headers: Record<string, string> }).headers['x-forwarded-proto']).toBe('http');
  });

  test('an HTTP rule blocks a path with 403; the backend never sees it', async () => {
    const before = origins.plain.seen.length;
    const res = await https('app.example', '/admin/users');
    expect(res.status).toBe(403);
    expect(res.body).toContain('the admin console is internal');
    expect(origins.plain.seen.slice(before).some((s) => s.url === '/admin/users')).toBe(false);
    expect((await recordFor('/admin/users')).http_rule).toBe('no-admin');
  });

  test('a route whose host policy denies gets 403', async () => {
    const res = await plain('blocked.example', '/hello?case=blocked');
    expect(res.status).toBe(403);
    expect(res.body).toContain('this application is closed');
  });

  test('DLP: an upload carrying an AWS access key id is stopped before the backend', async () => {
    const before = origins.plain.seen.length;
    const res = await https('app.example', '/echo?case=dlp', ['--data-binary', 'key=AKIAQWERTYUIOPASDFGH&x=1']);
    expect(res.status).toBe(403);
    expect(origins.plain.seen.slice(before).some((s) => s.url === '/echo?case=dlp')).toBe(false);
    const record = await recordFor('/echo?case=dlp');
    expect(record).toMatchObject({ action: 'deny', decision_code: 'dlp' });
    expect(record.dlp?.[0]?.detector).toBe('aws_access_key_id');
  });

  test('a cacheable backend response is served from the cache the second time', async () => {
    const first = await https('cache.example', '/max-age');
    const second = await https('cache.example', '/max-age');
    expect(first.status).toBe(200);
    expect(second.body).toBe(first.body);
    expect(cacheOrigin.hits('/max-age')).toBe(1);
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === '/max-age');
    expect(records.map((r) => r.cache)).toEqual(['miss', 'hit']);
  });

  test('hosts sharing a backend never share its cached responses, even when the backend does not say Vary', async () => {
    const a1 = await plain('a.tenants.example', '/home');
    const b1 = await plain('b.tenants.example', '/home');
    const a2 = await plain('a.tenants.example', '/home');
    expect(a1.body).toBe(`tenant a.tenants.example:${httpPort}\n`);
    expect(b1.body).toBe(`tenant b.tenants.example:${httpPort}\n`);
    expect(a2.body).toBe(a1.body);
    expect(tenantHits).toBe(2);
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === '/home');
    expect(records.map((r) => r.cache)).toEqual(['miss', 'miss', 'hit']);
    // The same without Vary: each application still gets only its own responses.
    const hitsBefore = tenantHits;
    const c1 = await plain('c.tenants.example', '/no-vary');
    const d1 = await plain('d.tenants.example', '/no-vary');
    const c2 = await plain('c.tenants.example', '/no-vary');
    expect(c1.body).toBe(`tenant c.tenants.example:${httpPort}\n`);
    expect(d1.body).toBe(`tenant d.tenants.example:${httpPort}\n`);
    expect(c2.body).toBe(c1.body);
    expect(tenantHits - hitsBefore).toBe(2);
  });

  test.each([
    ['cleartext', 'ws'],
    ['TLS', 'wss'],
  ])('a WebSocket through the %s listener is relayed to its backend', async (_kind, scheme) => {
    const port = scheme === 'wss' ? tlsPort : httpPort;
    // The socket is opened by hand, as --resolve does for curl: to the listener, for ws.example.
    const client = new WebSocket(`${scheme}://ws.example:${port}/echo`, {
      createConnection: () => (scheme === 'wss' ? tls.connect({ port, host: '127.0.0.1', servername: 'ws.example', ca: readFileSync(caFile) }) : net.connect(port, '127.0.0.1')),
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no echo')), 5000);
      client.on('open', () => client.send(`through the reverse ${scheme} listener`));
      client.on('message', (data: Buffer) => {
        clearTimeout(timer);
        resolve(data.toString());
      });
      client.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    client.close();
    expect(echoed).toContain(`through the reverse ${scheme} listener`);
  });

  test('an unknown host gets 421 with a page that says why, and an audit record; no upstream is contacted', async () => {
    const before = origins.plain.seen.length;
    const res = await plain('elsewhere.example', '/hello?case=unknown');
    expect(res.status).toBe(421);
    expect(res.body).toContain('no route in reverse.routes serves elsewhere.example');
    expect(origins.plain.seen.length).toBe(before);
    const record = await recordFor('/hello?case=unknown');
    expect(record).toMatchObject({ frontend: 'reverse', status: 421, route: null, error: expect.stringContaining('TG_ERR_MISDIRECTED') });
  });

  test('a backend with a certificate nothing vouches for: 502, its content never served', async () => {
    const res = await https('bad.example', '/hello?case=badcert');
    expect(res.status).toBe(502);
    expect(res.body).not.toContain('hello from bad');
    expect(badOrigin.seen.length).toBe(0);
    expect((await recordFor('/hello?case=badcert')).error).toMatch(/TG_ERR_UPSTREAM_CERT/);
  });

  test("a request for a host the connection's certificate does not name gets 421 (no domain fronting)", async () => {
    const before = origins.plain.seen.length;
    // new.example has a route, but the certificate served for app.example does not name it (yet).
    const res = await https('app.example', '/hello?case=fronted', ['-H', 'Host: new.example']);
    expect(res.status).toBe(421);
    expect(res.body).toContain('its certificate does not name new.example');
    expect(origins.plain.seen.length).toBe(before);
    // A host the same certificate names may share the connection (HTTP/2 reuse).
    const shared = await https('app.example', '/hello?case=shared', ['-H', 'Host: one.apps.example']);
    expect(shared.status).toBe(200);
    expect((await recordFor('/hello?case=shared')).route).toBe('*.apps.example/');
  });

  test('certificates reload when their files change: a new SNI name is served', async () => {
    const before = await https('new.example', '/hello?case=before-reload');
    // The current certificate does not name new.example: curl refuses it.
    expect(before.status).toBe(0);
    writeServerCertificate([...names, 'new.example']);
    const after = await eventually(
      () => https('new.example', '/hello?case=after-reload'),
      (r) => r.status === 200,
      8000,
    );
    expect(after.status).toBe(200);
    expect(after.body).toBe('hello from plain\n');
    expect(gw.logs().some((l) => l.msg === 'reverse proxy routes and certificates reloaded')).toBe(true);
  });

  test('routes reload with the policy: a route added to the configuration is served after a reload', async () => {
    const before = await plain('late.example', '/hello?case=late-before');
    expect(before.status).toBe(421);
    appendFileSync(path.join(gw.dir, 'tollgate.yaml'), `\n    - { host: late.example, backend: "http://127.0.0.1:${origins.plain.port}" }\n`);
    gw.gateway.reload('test');
    const after = await eventually(
      () => plain('late.example', '/hello?case=late-after'),
      (r) => r.status !== 421,
      8000,
    );
    // late.example has no policy rule: default_action (deny) decides, as for any destination.
    expect(after.status).toBe(403);
    expect((await recordFor('/hello?case=late-after')).route).toBe('late.example/');
  });

  test('a broken certificate update keeps the last good set, with a log line', async () => {
    writeFileSync(certFile, 'not a certificate\n');
    await eventually(
      () => gw.logs().some((l) => l.msg === 'reverse proxy reload failed; the previous routes and certificates stay in force'),
      (seen) => seen,
      8000,
    );
    const res = await https('new.example', '/hello?case=kept');
    expect(res.status).toBe(200);
  });
});

describe('reverse-proxy listener without allow_addresses', () => {
  let origins: TestOrigins;
  let gw: TestGateway;

  beforeAll(async () => {
    origins = await startTestOrigins();
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  reverse_http: 127.0.0.1:0',
      allowedPorts: { tunnel: [443], http: [80, origins.plain.port] },
      // No allow_addresses: the destination guard refuses loopback for everything but backends.
      upstreamSection: 'upstream:\n  hosts:\n    origin.test: 127.0.0.1',
      policies: { 'p.yaml': 'rules:\n  - name: all\n    match: [app.example, origin.test]\n    action: inspect\n' },
      extraConfig: `reverse:\n  routes:\n    - { host: app.example, backend: "http://origin.test:${origins.plain.port}" }`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origins?.close();
  });

  test('a configured backend on loopback is served; the same origin through the forward proxy is refused', async () => {
    const port = gw.gateway.address('reverseHttp')!.port;
    const reverse = await curl(['--resolve', `app.example:${port}:127.0.0.1`, `http://app.example:${port}/hello`]);
    expect(reverse.status).toBe(200);
    expect(reverse.body).toBe('hello from plain\n');
    const forward = await curl(['-x', gw.proxy, `http://origin.test:${origins.plain.port}/hello`]);
    expect(forward.status).toBe(403);
    expect(forward.body).toContain('TG_ERR_DESTINATION_FORBIDDEN');
  });
});

describe('reverse-proxy listener behind a balancer (PROXY protocol v2)', () => {
  let origins: TestOrigins;
  let gw: TestGateway;

  beforeAll(async () => {
    origins = await startTestOrigins();
    gw = await startTestGateway({
      listenSection: 'listen:\n  reverse_http: 127.0.0.1:0\n  proxy_protocol: [reverse_http]',
      policies: { 'p.yaml': 'rules:\n  - name: all\n    match: app.example\n    action: inspect\n' },
      extraConfig: `reverse:\n  routes:\n    - { host: app.example, backend: "http://127.0.0.1:${origins.plain.port}" }`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origins?.close();
  });

  test('the backend is told the client the header names, not the balancer', async () => {
    const port = gw.gateway.address('reverseHttp')!.port;
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: '203.0.113.77', port: 40001 }, destination: { address: '10.0.0.5', port: 80 } });
    const request = Buffer.from('GET /echo?case=balancer HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n');
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(Buffer.concat([header, request])));
      let text = '';
      const timer = setTimeout(() => socket.destroy(), 5000);
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(text);
      });
    });
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    const seen = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-for']).toBe('203.0.113.77');
    expect(seen.headers.forwarded).toBe('for=203.0.113.77;proto=http;host="app.example"');
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/echo?case=balancer'));
    expect(records.find((x) => x.type === 'request' && x.path === '/echo?case=balancer')).toMatchObject({ client: '203.0.113.77', frontend: 'reverse' });
    // Log lines name the listener by its configuration key.
    expect(gw.logs().find((l) => l.msg === 'listening')).toMatchObject({ listener: 'reverse_http', proxy_protocol: true });
  });
});

describe('reverse-proxy listener configuration errors', () => {
  test('listen.reverse without reverse.certificates does not start, and says which key to fix', async () => {
    await expect(
      startTestGateway({
        listenSection: 'listen:\n  reverse: 127.0.0.1:0',
        policies: { 'p.yaml': 'rules: []\n' },
        extraConfig: 'reverse:\n  routes:\n    - { host: app.example, backend: "http://127.0.0.1:9" }',
      }),
    ).rejects.toThrow(/reverse\.certificates.*listen\.reverse needs at least one/s);
  });
});
