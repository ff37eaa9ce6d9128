import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { run } from './support/run';

/** HTTP rules and DLP when both sides speak HTTP/2 (curl --http2 through an inspected tunnel). */
describe('HTTP rules and DLP over HTTP/2', () => {
  let gw: TestGateway;
  let origin: http2.Http2SecureServer;
  let port: number;
  const seen: { path: string; headers: http2.IncomingHttpHeaders; body: number }[] = [];

  beforeAll(async () => {
    const dir = tempDir('rules-h2');
    const root = issue({ commonName: 'rules h2 root', isCa: true });
    const leaf = issue({ commonName: 'h2.test', dnsNames: ['h2.test'], issuer: root });
    origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      let body = 0;
      req.on('data', (chunk: Buffer) => (body += chunk.length));
      req.on('end', () => {
        seen.push({ path: req.url, headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`got ${body} over ${req.httpVersion}\n`);
      });
    });
    origin.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [port], http: [80] },
      hostNames: ['h2.test'],
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: {
        'p.yaml': `rules:
  - name: h2-rules
    match: h2.test
    action: inspect
    http:
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
      - name: tenant
        action: set_header
        set_headers: { request: { X-Tenant: acme } }
    dlp:
      action: deny
`,
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
  });

  const curlH2 = (args: string[], url: string) =>
    run('curl', ['-sS', '--http2', '--max-time', '15', '-x', gw.proxy, '--cacert', gw.caFile, '-w', '\n%{http_version} %{http_code}', ...args, url], { timeoutMs: 20_000 });
  const last = (out: Buffer): string => out.toString().split('\n').pop()!;

  test('request deny, header edit and report fields on HTTP/2 streams', async () => {
    expect(last((await curlH2([], `https://h2.test:${port}/admin/x`)).stdout)).toBe('2 403');
    expect(seen.some((s) => s.path === '/admin/x')).toBe(false);
    const ok = await curlH2([], `https://h2.test:${port}/hello`);
    expect(last(ok.stdout)).toBe('2 200');
    expect(seen.find((s) => s.path === '/hello')?.headers['x-tenant']).toBe('acme');
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/admin/x'));
    const denied = records.find((x): x is RequestRecord => x.type === 'request' && x.path === '/admin/x')!;
    expect(denied).toMatchObject({ status: 403, http_rule: 'no-admin', http_version: '2.0' });
  });

  test('DLP stops an HTTP/2 upload (no Content-Length needed) before the origin has it', async () => {
    const res = await curlH2(['-H', 'Content-Length:', '--data-binary', `token=ghp_${'Z'.repeat(36)}`], `https://h2.test:${port}/upload`);
    expect(last(res.stdout)).toBe('2 403');
    // HTTP/2 opens the origin stream with the request headers; not one body byte followed.
    expect(seen.filter((s) => s.path === '/upload').reduce((n, s) => n + s.body, 0)).toBe(0);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/upload'));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === '/upload')!;
    expect(record.dlp).toEqual([{ detector: 'github_token', offset: 6, action: 'deny' }]);
    expect(JSON.stringify(record)).not.toContain('ghp_');
  });
});
