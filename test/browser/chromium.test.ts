import { mkdirSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from '../integration/support/gateway';
import { issue, tempDir, writePem } from '../integration/support/pki';
import { spawn } from 'node:child_process';
import { cleanEnv, run } from '../integration/support/run';
import { startWsOrigin, type WsOrigin } from '../integration/support/ws-origins';

/**
 * A real browser through interception: Debian's headless Chromium trusts the gateway CA from a
 * fresh NSS database (as an enterprise rollout would install it), uses the gateway as its
 * proxy, and loads a page whose script comes from the same inspected origin. Chromium starts
 * slowly on a shared two-core machine, hence the generous but bounded timeouts. The page opens
 * a WebSocket through the gateway too, then POSTs its own DOM back, which the test checks.
 */
const CHROMIUM = '/usr/bin/chromium';
const BROWSER_TIMEOUT_MS = 90_000;

const PAGE = '<!doctype html><html><head><title>tollgate browser test</title><script src="/app.js"></script></head><body><p id="static">served through tollgate</p></body></html>';
const SCRIPT = `
function note(id, text) { const p = document.createElement('p'); p.id = id; p.textContent = text; document.body.appendChild(p); }
document.addEventListener('DOMContentLoaded', () => {
  note('dynamic', 'script ran: ' + location.host);
  const ws = new WebSocket('wss://origin.test:' + window.WS_PORT + '/echo');
  ws.onopen = () => ws.send('ping from the browser');
  const report = () => fetch('/report', { method: 'POST', body: document.documentElement.outerHTML });
  ws.onmessage = (event) => { note('ws', 'echo: ' + event.data); ws.close(); report(); };
  ws.onerror = () => { note('ws', 'websocket failed'); report(); };
});`;

describe('headless Chromium through the gateway', () => {
  let gw: TestGateway;
  let origin: http2.Http2SecureServer;
  let port: number;
  let wsOrigin: WsOrigin;
  /** The page POSTs its own DOM to /report once its WebSocket has answered (or failed). */
  let reportReceived: (dom: string) => void = () => undefined;
  let home: string;

  beforeAll(async () => {
    const dir = tempDir('browser');
    const root = issue({ commonName: 'browser origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    // An origin that speaks h2 (and http/1.1), so the browser gets HTTP/2 through the gateway.
    origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      if (req.url === '/report') {
        let dom = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (dom += chunk));
        req.on('end', () => {
          res.writeHead(204);
          res.end();
          reportReceived(dom);
        });
        return;
      }
      const [type, body] =
        req.url === '/app.js' ? ['text/javascript', `window.WS_PORT = ${wsOrigin.port};\n${SCRIPT}`] : req.url === '/' ? ['text/html; charset=utf-8', PAGE] : ['text/plain', 'not found\n'];
      res.writeHead(body.startsWith('not found') ? 404 : 200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    origin.on('tlsClientError', () => undefined);
    // The page's WebSocket goes to an echo origin (its own port) through the same interception.
    wsOrigin = await startWsOrigin({ cert: leaf.certPem, key: leaf.keyPem });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [port, wsOrigin.port], http: [80] },
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
    await wsOrigin?.close();
    await new Promise<void>((resolve) => {
      origin?.close(() => resolve());
    });
  });

  test(
    'loads an inspected page over HTTP/2, runs its script and a WebSocket; the audit file shows the browser requests',
    async () => {
      const userDataDir = tempDir('chromium-profile');
      const reported = new Promise<string>((resolve) => (reportReceived = resolve));
      const browser = spawn(
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
          // Keeps headless Chromium running until the test ends it (port 0: any free port).
          '--remote-debugging-port=0',
          `https://origin.test:${port}/`,
        ],
        { env: cleanEnv({ HOME: home }), stdio: ['ignore', 'ignore', 'pipe'], detached: true },
      );
      let stderr = '';
      browser.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      let timer: NodeJS.Timeout | undefined;
      const dom = await Promise.race([reported, new Promise<string>((resolve) => (timer = setTimeout(() => resolve(''), BROWSER_TIMEOUT_MS)))]);
      clearTimeout(timer);
      // Chromium's helpers are in its process group (detached above); end exactly that group.
      try {
        process.kill(-browser.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      if (!dom.includes('served through tollgate')) {
        throw new Error(`chromium did not report the page within ${BROWSER_TIMEOUT_MS} ms:\n${stderr}`);
      }
      expect(dom).toContain(`script ran: origin.test:${port}`);
      expect(dom).toContain('echo: ping from the browser');
      // The WebSocket's record is written when it closes, which may be just after the report.
      const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/echo') && r.some((x) => x.type === 'request' && x.path === '/app.js'), 10_000);
      const requests = records.filter((r): r is RequestRecord => r.type === 'request' && r.host === 'origin.test');
      const page = requests.find((r) => r.path === '/');
      const script = requests.find((r) => r.path === '/app.js');
      expect(page).toMatchObject({ status: 200, scheme: 'https', sni: 'origin.test', action: 'inspect', http_version: '2.0' });
      expect(script).toMatchObject({ status: 200, scheme: 'https' });
      expect(String(page!.request_headers['user-agent'] ?? page!.request_headers['User-Agent'])).toMatch(/Chrome/);
      expect(page!.upstream_cert_sha256).toMatch(/^[0-9A-F:]+$/);
      const handshake = requests.find((r) => r.path === '/echo');
      expect(handshake).toMatchObject({ status: 101, port: wsOrigin.port, http_version: '1.1' });
    },
    BROWSER_TIMEOUT_MS + 30_000,
  );
});
