import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { curl } from './support/run';
import { startHttpOrigin, type Origin } from './support/origins';
import { startTestGateway, type TestGateway } from './support/gateway';
import { type RecordingOrigin, rawExchange, startRecordingOrigin } from './support/raw-tcp';

describe('destination guard and loops', () => {
  let internal: RecordingOrigin;
  let origin: Origin;
  let gw: TestGateway;
  let policyFile = '';

  beforeAll(async () => {
    // 127.0.0.2 stands in for an internal service: only 127.0.0.1/32 is allowed below.
    internal = await startRecordingOrigin({ host: '127.0.0.2', replyAt: 'accept' });
    origin = await startHttpOrigin('public');
    gw = await startTestGateway({
      allowedPorts: { tunnel: [internal.port, origin.port], http: [internal.port, origin.port] },
      policies: { 'a.yaml': 'rules:\n  - match: [.test, 127.0.0.0/8, "::/0", 0.0.0.0/0]\n    action: splice\n' },
      upstreamSection: [
        'upstream:',
        '  hosts:',
        '    origin.test: 127.0.0.1',
        '    metadata.test: 169.254.169.254',
        '    internal.test: 10.0.0.1',
        '    sneaky.test: 127.0.0.2',
        '    mapped.test: "::ffff:127.0.0.2"',
        '    nat64.test: "64:ff9b::7f00:2"',
        '    self.test: 127.0.0.1',
        '  allow_addresses: [127.0.0.1/32]',
        '  connect_timeout: 2s',
      ].join('\n'),
    });
    policyFile = path.join(gw.dir, 'policies', 'a.yaml');
  });

  afterAll(async () => {
    await gw.stop();
    await internal.close();
    await origin.close();
  });

  test('the allowed origin works (control)', async () => {
    const res = await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello`]);
    expect(res.status).toBe(200);
  });

  test.each([
    'metadata.test',
    'internal.test',
    'sneaky.test',
    'mapped.test',
    'nat64.test',
    '2130706434',
    '0x7f.0.0.2',
    '0177.0.0.2',
    '127.0.0.2.',
    '[::ffff:7f00:2]',
    '[::ffff:127.0.0.2]',
    '[64:ff9b::7f00:2]',
    '[2002:7f00:2::1]',
  ])('CONNECT %s is refused with 403 before any dial', async (host) => {
    const reply = await rawExchange(gw.explicitPort, `CONNECT ${host}:${internal.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(reply).toMatch(/x-tollgate-reason: TG_ERR_DESTINATION_FORBIDDEN/);
    expect(internal.connections()).toBe(0);
  });

  test.each(['metadata.test', 'internal.test', 'sneaky.test', 'mapped.test', '2130706434', '[::ffff:7f00:2]'])('plain HTTP to %s is refused with 403 before any dial', async (host) => {
    const res = await curl(['-x', gw.proxy, `http://${host}:${internal.port}/`]);
    expect(res.status).toBe(403);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_DESTINATION_FORBIDDEN');
    expect(internal.connections()).toBe(0);
  });

  test("a flow to one of the gateway's own listeners is refused (proxy loop), by address or by name", async () => {
    const port = gw.explicitPort;
    writeFileSync(policyFile, `rules:\n  - match: [.test, 127.0.0.0/8]\n    action: splice\n    ports: [${port}, ${internal.port}, ${origin.port}]\n`);
    expect(gw.gateway.reload('test').ok).toBe(true);
    for (const host of ['127.0.0.1', 'self.test', '2130706433']) {
      const reply = await rawExchange(gw.explicitPort, `CONNECT ${host}:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 403 /);
      expect(reply).toMatch(/x-tollgate-reason: TG_ERR_LOOP/);
    }
    const res = await curl(['-x', gw.proxy, `http://self.test:${port}/`]);
    expect(res.status).toBe(403);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_LOOP');
  });

  test('a plain HTTP request whose Via already names this gateway is refused (loop)', async () => {
    const before = origin.seen.length;
    const res = await curl(['-x', gw.proxy, '-H', 'Via: 1.1 upstream-proxy, 1.1 tollgate', `http://origin.test:${origin.port}/hello`]);
    expect(res.status).toBe(403);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_LOOP');
    expect(origin.seen.length).toBe(before);
    const other = await curl(['-x', gw.proxy, '-H', 'Via: 1.1 someone-else', `http://origin.test:${origin.port}/hello`]);
    expect(other.status).toBe(200);
  });
});

describe('loops through a wildcard bind', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 0.0.0.0:0',
      policies: { 'a.yaml': 'rules:\n  - match: [0.0.0.0/0, .test]\n    action: splice\n' },
      upstreamSection: 'upstream:\n  hosts:\n    self.test: 127.0.0.1\n  allow_addresses: [0.0.0.0/0]',
      extraConfig: '',
    });
    writeFileSync(path.join(gw.dir, 'policies', 'a.yaml'), `rules:\n  - match: [0.0.0.0/0, .test]\n    action: splice\n    ports: [${gw.explicitPort}]\n`);
    expect(gw.gateway.reload('test').ok).toBe(true);
  });

  afterAll(async () => {
    await gw.stop();
  });

  test('every local interface address with the listener port is the gateway itself', async () => {
    const local = Object.values(os.networkInterfaces())
      .flat()
      .filter((info): info is os.NetworkInterfaceInfo => info !== undefined && info.family === 'IPv4')
      .map((info) => info.address);
    for (const address of ['127.0.0.1', '127.3.4.5', 'self.test', ...local]) {
      const reply = await rawExchange(gw.explicitPort, `CONNECT ${address}:${gw.explicitPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(`${address} ${reply.split('\r\n')[0]}`).toBe(`${address} HTTP/1.1 403 Forbidden`);
      expect(reply).toMatch(/x-tollgate-reason: TG_ERR_LOOP/);
    }
  });
});
