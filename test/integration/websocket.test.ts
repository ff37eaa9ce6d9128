import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import WebSocket from 'ws';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';
import { startWsOrigin, type WsOrigin } from './support/ws-origins';

type Opened = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number; body: string } | { kind: 'error'; message: string };

/** A real WebSocket client (the `ws` package) through the gateway, bounded in time. */
function connect(url: string, agent: Agent, ca?: string): Promise<Opened> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { agent, ...(ca ? { ca } : {}), handshakeTimeout: 10_000 });
    ws.once('open', () => resolve({ kind: 'open', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body }));
    });
    ws.once('error', (err) => resolve({ kind: 'error', message: err.message }));
  });
}

function roundTrip(ws: WebSocket, data: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo within 10 s')), 10_000);
    ws.once('message', (reply: Buffer) => {
      clearTimeout(timer);
      resolve(reply);
    });
    ws.send(data);
  });
}

function closed(ws: WebSocket, timeoutMs: number): Promise<{ code: number; ms: number }> {
  const start = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ code: -1, ms: Date.now() - start }), timeoutMs);
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - start });
    });
  });
}

function requests(records: readonly { type: string }[]): RequestRecord[] {
  return records.filter((r): r is RequestRecord => r.type === 'request');
}

describe('WebSocket through the gateway', () => {
  let gw: TestGateway;
  let plain: WsOrigin;
  let secure: WsOrigin;
  let ca: string;

  beforeAll(async () => {
    const dir = tempDir('ws');
    const root = issue({ commonName: 'ws origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'denied.test'], issuer: root });
    plain = await startWsOrigin();
    secure = await startWsOrigin({ cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [secure.port], http: [plain.port] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: 'limits:\n  client_idle_timeout: 2s',
      policies: { 'p.yaml': 'rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n  - name: no-denied\n    match: denied.test\n    action: deny\n' },
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await secure.close();
  });

  test('plain ws:// by absolute-form: messages echo both ways; one request record with status 101', async () => {
    const opened = await connect(`ws://origin.test:${plain.port}/echo`, new HttpProxyAgent(gw.proxy));
    expect(opened.kind).toBe('open');
    const ws = (opened as { ws: WebSocket }).ws;
    expect((await roundTrip(ws, 'hello')).toString()).toBe('hello');
    // Larger than socket buffers in both directions: the relay must respect backpressure.
    const big = randomBytes(4 * 1024 * 1024);
    expect((await roundTrip(ws, big)).equals(big)).toBe(true);
    const done = closed(ws, 5000);
    ws.close(1000, 'bye');
    expect((await done).code).toBe(1000);
    expect(plain.handshakes[0]?.via).toMatch(/tollgate/);
    const records = await eventually(gw.audit, (r) => requests(r).some((x) => x.status === 101 && x.scheme === 'http'));
    const record = requests(records).find((x) => x.status === 101 && x.scheme === 'http')!;
    expect(record).toMatchObject({ method: 'GET', path: '/echo', host: 'origin.test', action: 'inspect', error: null });
    expect(record.bytes_from_client).toBeGreaterThan(big.length);
    expect(record.bytes_to_client).toBeGreaterThan(big.length);
  });

  test('wss:// through interception: the gateway terminates TLS, relays frames and audits the handshake', async () => {
    const opened = await connect(`wss://origin.test:${secure.port}/echo`, new HttpsProxyAgent(gw.proxy), ca);
    expect(opened.kind).toBe('open');
    const ws = (opened as { ws: WebSocket }).ws;
    expect((await roundTrip(ws, 'through the tunnel')).toString()).toBe('through the tunnel');
    const big = randomBytes(2 * 1024 * 1024);
    expect((await roundTrip(ws, big)).equals(big)).toBe(true);
    ws.close(1000);
    const records = await eventually(gw.audit, (r) => requests(r).some((x) => x.status === 101 && x.scheme === 'https'));
    const record = requests(records).find((x) => x.status === 101 && x.scheme === 'https')!;
    expect(record).toMatchObject({ method: 'GET', path: '/echo', host: 'origin.test', sni: 'origin.test' });
    expect(record.upstream_cert_sha256).toMatch(/^[0-9A-F:]+$/);
    expect(record.client_tls?.version).toMatch(/TLS/);
  });

  test('a denied destination gets 403 instead of the upgrade, and is audited', async () => {
    const opened = await connect(`ws://denied.test:${plain.port}/echo`, new HttpProxyAgent(gw.proxy));
    expect(opened).toMatchObject({ kind: 'refused', status: 403 });
    const records = await eventually(gw.audit, (r) => requests(r).some((x) => x.host === 'denied.test'));
    expect(requests(records).find((x) => x.host === 'denied.test')).toMatchObject({ status: 403, action: 'deny', rule: 'no-denied' });
  });

  test('an origin that declines the upgrade: its status reaches the client', async () => {
    const opened = await connect(`wss://origin.test:${secure.port}/not-ws`, new HttpsProxyAgent(gw.proxy), ca);
    expect(opened).toMatchObject({ kind: 'refused', status: 404 });
  });

  test('Host naming another, not inspected, destination inside a tunnel: 403 (domain fronting)', async () => {
    const opened = await new Promise<Opened>((resolve) => {
      // ws passes TLS options through to tls.connect; its types omit servername. SNI stays the
      // tunnel's name while Host names the denied destination.
      const options: WebSocket.ClientOptions & { servername: string } = {
        agent: new HttpsProxyAgent(gw.proxy),
        ca,
        servername: 'origin.test',
        headers: { host: 'denied.test' },
        handshakeTimeout: 10_000,
      };
      const ws = new WebSocket(`wss://origin.test:${secure.port}/echo`, options);
      ws.once('open', () => resolve({ kind: 'open', ws }));
      ws.once('unexpected-response', (_req, res) => resolve({ kind: 'refused', status: res.statusCode ?? 0, body: '' }));
      ws.once('error', (err) => resolve({ kind: 'error', message: err.message }));
    });
    expect(opened).toMatchObject({ kind: 'refused', status: 403 });
  });

  test('an idle WebSocket is closed after limits.client_idle_timeout', async () => {
    const opened = await connect(`ws://origin.test:${plain.port}/echo`, new HttpProxyAgent(gw.proxy));
    expect(opened.kind).toBe('open');
    const ws = (opened as { ws: WebSocket }).ws;
    const result = await closed(ws, 8000);
    // 1006: the connection dropped without a close frame (the gateway cut it).
    expect(result.code).toBe(1006);
    expect(result.ms).toBeGreaterThan(1500);
    expect(result.ms).toBeLessThan(6000);
  });

  test('another Upgrade (h2c) is served as an ordinary request without it', async () => {
    const res = await curl(['-x', gw.proxy, '-H', 'Upgrade: h2c', '-H', 'Connection: Upgrade', `http://origin.test:${plain.port}/plain`]);
    expect(res.status).toBe(404);
    expect(res.body).toBe('not a websocket endpoint\n');
    const withBody = await curl(['-x', gw.proxy, '-H', 'Upgrade: foo', '-H', 'Connection: Upgrade', '--data', 'x=1', `http://origin.test:${plain.port}/plain`]);
    expect(withBody.status).toBe(400);
  });

  test('the gateway stays up and serves after all of the above', async () => {
    const opened = await connect(`ws://origin.test:${plain.port}/echo`, new HttpProxyAgent(gw.proxy));
    expect(opened.kind).toBe('open');
    (opened as { ws: WebSocket }).ws.terminate();
  });
});
