import { mkdirSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { RequestRecord } from '../../src/audit/fields';
import { eventually, startTestGateway, type TestGateway } from '../integration/support/gateway';
import { issue, tempDir, writePem } from '../integration/support/pki';
import { cleanEnv, run } from '../integration/support/run';

/**
 * A real browser through interception: Debian's headless Chromium trusts the gateway CA from a
 * fresh NSS database (as an enterprise rollout would install it), uses the gateway as its
 * proxy, and loads a page whose script comes from the same inspected origin. Chromium starts
 * slowly on a shared two-core machine, hence the generous but bounded timeouts.
 */
const CHROMIUM = '/usr/bin/chromium';
const BROWSER_TIMEOUT_MS = 90_000;

const PAGE = '<!doctype html><html><head><title>tollgate browser test</title><script src="/app.js"></script></head><body><p id="static">served through tollgate</p></body></html>';
const SCRIPT = "document.addEventListener('DOMContentLoaded', () => { const p = document.createElement('p'); p.id = 'dynamic'; p.textContent = 'script ran: ' + location.host; document.body.appendChild(p); });";

describe('headless Chromium through the gateway', () => {
  let gw: TestGateway;
  let origin: http2.Http2SecureServer;
  let port: number;
  let home: string;

  beforeAll(async () => {
    const dir = tempDir('browser');
    const root = issue({ commonName: 'browser origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    // An origin that speaks h2 (and http/1.1), so the browser gets HTTP/2 through the gateway.
    origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      const [type, body] = req.url === '/app.js' ? ['text/javascript', SCRIPT] : req.url === '/' ? ['text/html; charset=utf-8', PAGE] : ['text/plain', 'not found\n'];
      res.writeHead(body.startsWith('not found') ? 404 : 200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    origin.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [port], http: [80] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: { 'p.yaml': 'rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n' },
    });
    // A fresh NSS database in a temporary HOME, trusting only the gateway CA for TLS servers.
    home = path.join(dir, 'home');
    const nssdb = path.join(home, '.pki', 'nssdb');
    mkdirSync(nssdb, { recursive: true });
    const env = cleanEnv({ HOME: home });
    const created = await run('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password'], { env });
    expect(created.code).toBe(0);
    const added = await run('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'tollgate', '-i', gw.caFile], { env });
    expect(added.code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await new Promise<void>((resolve) => {
      origin?.close(() => resolve());
    });
  });

  test(
    'loads an inspected HTTPS page and its script; the audit file shows the browser requests',
    async () => {
      const userDataDir = tempDir('chromium-profile');
      const result = await run(
        CHROMIUM,
        [
          `--proxy-server=${gw.proxy}`,
          // Chromium never proxies loopback by default; the page is not on loopback, but the
          // gateway's own checks must not depend on that.
          '--proxy-bypass-list=<-loopback>',
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-dev-shm-usage',
          `--user-data-dir=${userDataDir}`,
          // Give the script time to run before the DOM is dumped.
          '--virtual-time-budget=5000',
          '--dump-dom',
          `https://origin.test:${port}/`,
        ],
        { env: cleanEnv({ HOME: home }), timeoutMs: BROWSER_TIMEOUT_MS },
      );
      const dom = result.stdout.toString('utf8');
      if (!dom.includes('served through tollgate')) {
        throw new Error(`chromium did not render the page (exit ${result.code}, timed out ${result.timedOut}):\n${dom.slice(0, 2000)}\n${result.stderr.slice(-3000)}`);
      }
      expect(dom).toContain(`script ran: origin.test:${port}`);
      const records = await eventually(gw.audit, (r) => r.filter((x) => x.type === 'request').length >= 2, 10_000);
      const requests = records.filter((r): r is RequestRecord => r.type === 'request' && r.host === 'origin.test');
      const page = requests.find((r) => r.path === '/');
      const script = requests.find((r) => r.path === '/app.js');
      expect(page).toMatchObject({ status: 200, scheme: 'https', sni: 'origin.test', action: 'inspect', http_version: '2.0' });
      expect(script).toMatchObject({ status: 200, scheme: 'https' });
      expect(String(page!.request_headers['user-agent'] ?? page!.request_headers['User-Agent'])).toMatch(/Chrome/);
      expect(page!.upstream_cert_sha256).toMatch(/^[0-9A-F:]+$/);
    },
    BROWSER_TIMEOUT_MS + 30_000,
  );
});
