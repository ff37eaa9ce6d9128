import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { encodeProxyV2 } from '../../src/protocol/proxy-v2';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { curl } from './support/run';
import { startTestOrigins, type TestOrigins } from './support/test-origins';

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
      extraConfig: 'limits:\n  header_timeout: 1s\n  proxy_header_timeout: 1s',
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
    const reasons = behindBalancer
      .logs()
      .slice(before)
      .filter((l) => l.msg === 'connection refused: no valid PROXY protocol v2 header')
      .map((l) => String(l.reason));
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

/** A socket that has sent `header` (nothing when null) and reads into one buffer. */
async function connectBehindBalancer(port: number, header: Buffer | null): Promise<{ socket: net.Socket; received: () => Buffer; waitFor: (bytes: number) => Promise<Buffer>; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (header) socket.write(header);
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (buffer = Buffer.concat([buffer, chunk])));
  const waitFor = (bytes: number): Promise<Buffer> =>
    eventually(
      () => buffer,
      (b) => b.length >= bytes || socket.destroyed,
      3000,
    );
  return { socket, received: () => buffer, waitFor, closed };
}

/** Resolves when the socket closes, or rejects after `ms` (a listener must close a headerless connection). */
function closesWithin(closed: Promise<void>, ms: number): Promise<void> {
  return Promise.race([closed, new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms).unref())]);
}

describe('PROXY protocol v2 on the SOCKS and transparent TLS listeners', () => {
  let origins: TestOrigins;
  let gw: TestGateway;
  let socksPort: number;
  let tlsPort: number;

  beforeAll(async () => {
    origins = await startTestOrigins();
    gw = await startTestGateway({
      listenSection: 'listen:\n  socks: 127.0.0.1:0\n  transparent_tls: 127.0.0.1:0\n  proxy_protocol: [socks, transparent_tls]',
      allowedPorts: { tunnel: [origins.tls.port, origins.plain.port], http: [80] },
      policies: POLICY,
      upstreamCaFile: origins.originCaFile,
      extraConfig: `transparent:\n  tls_origin_port: ${origins.tls.port}\nlimits:\n  header_timeout: 1s\n  proxy_header_timeout: 1s`,
    });
    socksPort = gw.gateway.address('socks')!.port;
    tlsPort = gw.gateway.address('transparentTls')!.port;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
  });

  const headerFrom = (address: string, port: number): Buffer => encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address, port }, destination: { address: '10.0.0.5', port: 1080 } });

  async function connectionRecordOf(client: string): Promise<Record<string, unknown>> {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.client === client));
    return records.find((x) => x.type === 'connection' && x.client === client) as unknown as Record<string, unknown>;
  }

  function refusalsLogged(since: number): number {
    return gw
      .logs()
      .slice(since)
      .filter((l) => l.msg === 'connection refused: no valid PROXY protocol v2 header').length;
  }

  test('SOCKS5 after a v2 header: spliced, and the audit record carries the client from the header', async () => {
    const conn = await connectBehindBalancer(socksPort, headerFrom('203.0.113.81', 40081));
    conn.socket.write(Buffer.from([0x05, 0x01, 0x00]));
    expect(await conn.waitFor(2)).toEqual(Buffer.from([0x05, 0x00]));
    const name = Buffer.from('origin.test');
    const port = Buffer.alloc(2);
    port.writeUInt16BE(origins.plain.port);
    conn.socket.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, port]));
    const reply = await conn.waitFor(12);
    // After the method selection (2 bytes): VER 5, REP 0 (succeeded).
    expect(reply.subarray(2, 4)).toEqual(Buffer.from([0x05, 0x00]));
    conn.socket.write(`GET /hello HTTP/1.1\r\nHost: origin.test:${origins.plain.port}\r\nConnection: close\r\n\r\n`);
    await closesWithin(conn.closed, 3000);
    expect(conn.received().toString('latin1')).toContain('hello from plain');
    expect(await connectionRecordOf('203.0.113.81')).toMatchObject({ frontend: 'socks', client_port: 40081, action: 'splice' });
  });

  test('SOCKS without the header is refused and logged, and nothing is replied', async () => {
    const before = gw.logs().length;
    const conn = await connectBehindBalancer(socksPort, null);
    conn.socket.write(Buffer.from([0x05, 0x01, 0x00]));
    await closesWithin(conn.closed, 3000);
    expect(conn.received().length).toBe(0);
    expect(refusalsLogged(before)).toBe(1);
  });

  test('transparent TLS after a v2 header: the origin answers, and the audit record carries the client from the header', async () => {
    const conn = await connectBehindBalancer(tlsPort, headerFrom('203.0.113.82', 40082));
    const secure = tls.connect({ socket: conn.socket, servername: 'origin.test', ca: readFileSync(origins.originCaFile) });
    secure.on('error', () => undefined);
    let body = '';
    secure.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    await new Promise<void>((resolve) => secure.once('secureConnect', () => resolve()));
    secure.write('GET /hello HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n');
    await closesWithin(new Promise<void>((resolve) => secure.once('close', () => resolve())), 3000);
    expect(body).toMatch(/^HTTP\/1\.1 200/);
    expect(body).toContain('hello from tls');
    expect(await connectionRecordOf('203.0.113.82')).toMatchObject({ frontend: 'transparent-tls', client_port: 40082, action: 'splice' });
  });

  test('transparent TLS without the header is refused and logged before any TLS', async () => {
    const before = gw.logs().length;
    const conn = await connectBehindBalancer(tlsPort, null);
    const secure = tls.connect({ socket: conn.socket, servername: 'origin.test', ca: readFileSync(origins.originCaFile) });
    const failed = new Promise<string>((resolve) => {
      secure.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      secure.once('secureConnect', () => resolve('connected'));
    });
    await closesWithin(conn.closed, 3000);
    expect(await failed).not.toBe('connected');
    expect(refusalsLogged(before)).toBe(1);
  });
});
