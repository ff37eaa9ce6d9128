import net from 'node:net';
import { encodeProxyV2 } from '../../src/protocol/proxy-v2';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { curl } from './support/run';

/** Sends raw bytes to the explicit listener and collects the reply until the peer closes or `ms`. */
function exchange(port: number, bytes: Buffer, ms = 3000): Promise<{ reply: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ reply, closed: false });
    }, ms);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      // One complete response is enough.
      if (/\r\n\r\n/.test(reply) && /hello from/.test(reply)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ reply, closed: false });
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, closed: true });
    });
  });
}

const POLICY = { 'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' };

describe('PROXY protocol v2 on the explicit listener', () => {
  let origin: Origin;
  let behindBalancer: TestGateway;
  let direct: TestGateway;

  beforeAll(async () => {
    origin = await startHttpOrigin('origin');
    const ports = { tunnel: [origin.port], http: [origin.port] };
    behindBalancer = await startTestGateway({
      policies: POLICY,
      allowedPorts: ports,
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  proxy_protocol: [explicit]',
      extraConfig: 'limits:\n  header_timeout: 1s',
    });
    direct = await startTestGateway({ policies: POLICY, allowedPorts: ports });
  });

  afterAll(async () => {
    await behindBalancer.stop();
    await direct.stop();
    await origin.close();
  });

  const request = (port: number): Buffer => Buffer.from(`GET http://origin.test:${port}/hello HTTP/1.1\r\nHost: origin.test:${port}\r\nConnection: close\r\n\r\n`);

  test('a v2 header then an HTTP request: served, and the audit records carry the client from the header', async () => {
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: '203.0.113.77', port: 40001 }, destination: { address: '10.0.0.5', port: 3128 } });
    const { reply } = await exchange(behindBalancer.explicitPort, Buffer.concat([header, request(origin.port)]));
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    expect(reply).toContain('hello from origin');
    const records = await eventually(behindBalancer.audit, (r) => r.some((x) => x.type === 'connection' && x.client === '203.0.113.77'));
    const req = records.find((x) => x.type === 'request' && x.client === '203.0.113.77');
    expect(req).toMatchObject({ client: '203.0.113.77', client_port: 40001, status: 200 });
    expect(records.find((x) => x.type === 'connection' && x.client === '203.0.113.77')).toMatchObject({ client_port: 40001, frontend: 'explicit-http' });
  });

  test('an IPv6 client through a header split across writes, then CONNECT', async () => {
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp6', source: { address: '2001:db8::77', port: 40002 }, destination: { address: '2001:db8::1', port: 3128 } });
    const socket = net.connect(behindBalancer.explicitPort, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(header.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 50));
    socket.write(Buffer.concat([header.subarray(10), Buffer.from(`CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`)]));
    const established = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
    expect(established).toMatch(/^HTTP\/1\.1 200 Connection Established/);
    socket.destroy();
    const records = await eventually(behindBalancer.audit, (r) => r.some((x) => x.type === 'connection' && x.client === '2001:db8::77'));
    expect(records.find((x) => x.type === 'connection' && x.client === '2001:db8::77')).toMatchObject({ frontend: 'explicit-connect', client_port: 40002 });
  });

  test('LOCAL (a balancer health check) keeps the socket address', async () => {
    const { reply } = await exchange(behindBalancer.explicitPort, Buffer.concat([encodeProxyV2({ command: 'local' }), request(origin.port)]));
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
  });

  test('with proxy_protocol configured, a connection without a valid header is refused and logged', async () => {
    const before = behindBalancer.logs().length;
    const plain = await exchange(behindBalancer.explicitPort, request(origin.port));
    expect(plain.closed).toBe(true);
    expect(plain.reply).toBe('');
    const v1 = await exchange(behindBalancer.explicitPort, Buffer.from(`PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n`));
    expect(v1.closed).toBe(true);
    const silent = await exchange(behindBalancer.explicitPort, Buffer.alloc(0));
    expect(silent.closed).toBe(true);
    const reasons = behindBalancer.logs().slice(before).filter((l) => l.msg === 'connection refused: no valid PROXY protocol v2 header').map((l) => String(l.reason));
    expect(reasons).toEqual(expect.arrayContaining([expect.stringMatching(/no PROXY protocol v2 signature/), expect.stringMatching(/v1/), expect.stringMatching(/within 1000 ms/)]));
    // Still serving.
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: '198.51.100.1', port: 1 }, destination: { address: '10.0.0.5', port: 3128 } });
    expect((await exchange(behindBalancer.explicitPort, Buffer.concat([header, request(origin.port)]))).reply).toMatch(/^HTTP\/1\.1 200/);
  });

  test('without proxy_protocol, a PROXY header is just bad input: 400, and the claimed address is never used', async () => {
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: '203.0.113.99', port: 1 }, destination: { address: '10.0.0.5', port: 3128 } });
    const { reply } = await exchange(direct.explicitPort, Buffer.concat([header, request(origin.port)]));
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    const records = await direct.audit();
    expect(records.some((r) => r.type !== 'pinning' && r.client === '203.0.113.99')).toBe(false);
    expect((await curl(['-x', direct.proxy, `http://origin.test:${origin.port}/hello`])).status).toBe(200);
  });
});
