import net from 'node:net';
import WebSocket from 'ws';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';
import { rawExchange } from './support/raw-tcp';
import { startTestOrigins, type TestOrigins } from './support/test-origins';
import { startWsOrigin, type WsOrigin } from './support/ws-origins';

describe('transparent HTTP listener (curl --connect-to stands in for a REDIRECT rule)', () => {
  let origins: TestOrigins;
  let gw: TestGateway;
  let port: number;
  let originPort: number;
  let ws: WsOrigin;

  beforeAll(async () => {
    origins = await startTestOrigins();
    originPort = origins.plain.port;
    ws = await startWsOrigin();
    gw = await startTestGateway({
      listenSection: 'listen:\n  transparent_http: 127.0.0.1:0',
      allowedPorts: { tunnel: [443], http: [originPort, ws.port] },
      policies: {
        'p.yaml': 'rules:\n  - match: [origin.test, other.test]\n    action: splice\n  - name: no-denied\n    match: denied.test\n    action: deny\n    reason: denied for the test\n',
      },
      // The origin listens on an ephemeral port; a real deployment keeps the default 80.
      extraConfig: `transparent:\n  http_origin_port: ${originPort}`,
    });
    port = gw.gateway.address('transparentHttp')!.port;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
    await ws.close();
  });

  test("the target comes from Host; the origin gets the client's own Host and a Via", async () => {
    const before = origins.plain.seen.length;
    const res = await curl(['--connect-to', `origin.test:80:127.0.0.1:${port}`, 'http://origin.test/hello?x=1']);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from plain\n');
    const seen = origins.plain.seen[before]!;
    expect(seen.url).toBe('/hello?x=1');
    expect(seen.headers.host).toBe('origin.test');
    expect(seen.headers.via).toBe('1.1 tollgate');
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.frontend === 'transparent-http'),
      (l) => l.length >= 1,
    );
    expect(records[0]).toMatchObject({ host: 'origin.test', port: originPort, status: 200, action: 'splice' });
  });

  test('a Host with a port is dialled on that port when policy allows it', async () => {
    const before = origins.plain.seen.length;
    const res = await curl(['--connect-to', `other.test:${originPort}:127.0.0.1:${port}`, `http://other.test:${originPort}/hello`]);
    expect(res.status).toBe(200);
    expect(origins.plain.seen[before]!.headers.host).toBe(`other.test:${originPort}`);
  });

  test('a Host with a port policy does not allow is refused with 403', async () => {
    const res = await curl(['--connect-to', `origin.test:8081:127.0.0.1:${port}`, 'http://origin.test:8081/hello']);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/port 8081 is not allowed/);
  });

  test('a denied Host gets the block page', async () => {
    const before = origins.plain.seen.length;
    const res = await curl(['--connect-to', `denied.test:80:127.0.0.1:${port}`, 'http://denied.test/hello']);
    expect(res.status).toBe(403);
    expect(res.body).toContain('no-denied');
    expect(res.body).toContain('denied for the test');
    expect(origins.plain.seen.length).toBe(before);
  });

  test('keep-alive: two requests on one connection, each decided by its own Host', async () => {
    const res = await curl(['--connect-to', `origin.test:80:127.0.0.1:${port}`, '--connect-to', `denied.test:80:127.0.0.1:${port}`, 'http://origin.test/hello', 'http://denied.test/hello']);
    expect(res.body).toContain('hello from plain');
    expect(res.status).toBe(403);
  });

  test('no Host header: 400 and a log line', async () => {
    const reply = await rawExchange(port, 'GET /hello HTTP/1.0\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('no Host header');
  });

  test('an invalid Host: 400', async () => {
    const reply = await rawExchange(port, 'GET /hello HTTP/1.1\r\nHost: bad host!\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
  });

  test('CONNECT is refused with 400', async () => {
    const reply = await rawExchange(port, 'CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('CONNECT is not served by the transparent HTTP listener');
  });

  test('absolute-form is accepted, and Host must agree with it', async () => {
    const ok = await rawExchange(port, `GET http://origin.test:${originPort}/hello HTTP/1.1\r\nHost: origin.test:${originPort}\r\nConnection: close\r\n\r\n`);
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
    const bad = await rawExchange(port, `GET http://origin.test:${originPort}/hello HTTP/1.1\r\nHost: denied.test\r\n\r\n`);
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    // Bad input never takes the listener down.
    const res = await curl(['--connect-to', `origin.test:80:127.0.0.1:${port}`, 'http://origin.test/hello']);
    expect(res.status).toBe(200);
  });

  test("a WebSocket handshake takes the explicit proxy's upgrade path; messages echo through", async () => {
    // createConnection plays the router: the client dials origin.test, the socket reaches the listener.
    const client = new WebSocket(`ws://origin.test:${ws.port}/echo`, { createConnection: () => net.connect(port, '127.0.0.1') });
    const echoed = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no echo')), 5000);
      client.on('open', () => client.send('through the transparent listener'));
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
    expect(echoed).toBe('through the transparent listener');
    expect(ws.handshakes.at(-1)!.host).toBe(`origin.test:${ws.port}`);
  });
});
