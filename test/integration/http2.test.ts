import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { run } from './support/run';
import { connectTunnel, h2Request, h2Session } from './support/h2-client';

describe('HTTP/2 through interception', () => {
  let gw: TestGateway;
  let h2Origin: http2.Http2SecureServer;
  let h2Port: number;
  let h1Origin: Origin;
  let ca: string;
  let originConnections = 0;
  const originSessions = new Set<http2.ServerHttp2Session>();

  beforeAll(async () => {
    const dir = tempDir('h2');
    const root = issue({ commonName: 'h2 origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'h2.test', 'h1.test', 'other.test'], issuer: root });
    // An origin that speaks h2, and http/1.1 for clients that do not.
    h2Origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      // /hold reads the upload and never answers: the client gives up first.
      if (req.url === '/hold') {
        req.resume();
        return;
      }
      const body = `hello from h2 origin ${req.url} over ${req.httpVersion}\n`;
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'set-cookie': ['a=SECRET1', 'b=2'] });
      res.end(body);
    });
    h2Origin.on('tlsClientError', () => undefined);
    h2Origin.on('secureConnection', () => originConnections++);
    h2Origin.on('session', (session: http2.ServerHttp2Session) => {
      originSessions.add(session);
      session.once('close', () => originSessions.delete(session));
    });
    await new Promise<void>((resolve) => h2Origin.listen(0, '127.0.0.1', resolve));
    h2Port = (h2Origin.address() as AddressInfo).port;
    h1Origin = await startHttpsOrigin('h1 origin', { cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [h2Port, h1Origin.port], http: [80] },
      hostNames: ['h2.test', 'h1.test'],
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: { 'p.yaml': 'rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n  - match: denied.test\n    action: deny\n' },
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw.stop();
    await h1Origin.close();
    await new Promise<void>((resolve) => h2Origin.close(() => resolve()));
  });

  const curlH2 = (url: string) => run('curl', ['-sS', '--http2', '--max-time', '15', '-x', gw.proxy, '--cacert', gw.caFile, '-w', '\n%{http_version} %{http_code}', url], { timeoutMs: 20_000 });

  test('curl --http2 gets h2 from the gateway when the origin speaks h2', async () => {
    const res = await curlH2(`https://h2.test:${h2Port}/hello`);
    const [body, last] = res.stdout.toString().split(/\n(?=[^\n]*$)/);
    expect(last).toBe('2 200');
    expect(body).toBe('hello from h2 origin /hello over 2.0\n');
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.host === 'h2.test'));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.host === 'h2.test')!;
    expect(record).toMatchObject({ method: 'GET', path: '/hello', status: 200, scheme: 'https', action: 'inspect', http_version: '2.0' });
    // Pseudo-headers are not written as headers; secrets stay redacted.
    expect(Object.keys(record.request_headers).some((k) => k.startsWith(':'))).toBe(false);
    expect(JSON.stringify(record)).not.toContain('SECRET1');
  });

  test('the origin ALPN answer is cached and the origin session is shared across tunnels', async () => {
    expect((await curlH2(`https://h2.test:${h2Port}/warm`)).stdout.toString().endsWith('2 200')).toBe(true);
    const before = originConnections;
    expect(before).toBeGreaterThan(0);
    for (const path of ['/again-1', '/again-2']) {
      expect((await curlH2(`https://h2.test:${h2Port}${path}`)).stdout.toString().endsWith('2 200')).toBe(true);
    }
    // Two more client tunnels, no new origin connection: no probe, no new session.
    expect(originConnections).toBe(before);
  });

  test('an origin that closes its HTTP/2 sessions: the next request opens a new one', async () => {
    expect((await curlH2(`https://h2.test:${h2Port}/before-close`)).stdout.toString().endsWith('2 200')).toBe(true);
    expect(originSessions.size).toBeGreaterThan(0);
    for (const session of originSessions) session.close();
    await eventually(
      () => originSessions.size,
      (n) => n === 0,
      5000,
    );
    const after = await curlH2(`https://h2.test:${h2Port}/after-close`);
    expect(after.stdout.toString()).toBe('hello from h2 origin /after-close over 2.0\n\n2 200');
  });

  test('an HTTP/1.1 client of the same h2 origin is served over HTTP/1.1 on both sides', async () => {
    const res = await run('curl', ['-sS', '--http1.1', '--max-time', '15', '-x', gw.proxy, '--cacert', gw.caFile, `https://h2.test:${h2Port}/one`], { timeoutMs: 20_000 });
    expect(res.stdout.toString()).toBe('hello from h2 origin /one over 1.1\n');
  });

  test('a POST body streams over HTTP/2 on both sides', async () => {
    const { session } = await h2Session(gw.explicitPort, 'h2.test', h2Port, ca);
    try {
      const reply = await new Promise<{ status: number }>((resolve, reject) => {
        const stream = session.request({ ':path': '/upload', ':method': 'POST', 'content-type': 'application/octet-stream' });
        let status = 0;
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', () => undefined);
        stream.on('end', () => resolve({ status }));
        stream.on('error', reject);
        stream.end(Buffer.alloc(256 * 1024, 0x7a));
      });
      expect(reply.status).toBe(200);
      const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/upload'));
      expect(records.find((x): x is RequestRecord => x.type === 'request' && x.path === '/upload')!.bytes_from_client).toBe(256 * 1024);
    } finally {
      session.close();
    }
  });

  test('curl --http2 falls back to HTTP/1.1 when the origin does not speak h2', async () => {
    const res = await curlH2(`https://h1.test:${h1Origin.port}/hello`);
    const text = res.stdout.toString();
    expect(text).toContain('hello from h1 origin');
    expect(text.endsWith('1.1 200')).toBe(true);
  });

  test('Node http2 client: concurrent streams on one session, one audit record per stream', async () => {
    const { session, alpn } = await h2Session(gw.explicitPort, 'h2.test', h2Port, ca);
    expect(alpn).toBe('h2');
    try {
      const paths = ['/a', '/b', '/c', '/missing'];
      const results = await Promise.all(paths.map((p) => h2Request(session, p)));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 404]);
      expect(results[1]!.body).toBe('hello from h2 origin /b over 2.0\n');
      expect(String(results[0]!.headers.via)).toMatch(/tollgate/);
      const records = await eventually(gw.audit, (r) => r.filter((x) => x.type === 'request' && ['/a', '/b', '/c', '/missing'].includes(x.path)).length >= 4);
      const mine = records.filter((x): x is RequestRecord => x.type === 'request' && paths.includes(x.path));
      expect(mine).toHaveLength(4);
      expect(new Set(mine.map((r) => r.flow_id)).size).toBe(1);
      expect(new Set(mine.map((r) => r.request_id)).size).toBe(4);
    } finally {
      session.close();
    }
  });

  test('a client that resets its stream mid-upload: the record says the client left', async () => {
    const { session } = await h2Session(gw.explicitPort, 'h2.test', h2Port, ca);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/hold' });
      stream.on('error', () => undefined);
      stream.write('x'.repeat(1000));
      await new Promise((resolve) => setTimeout(resolve, 200));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/hold'));
      const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === '/hold')!;
      expect(record).toMatchObject({ status: 0, error: 'client closed before the response completed' });
    } finally {
      session.close();
    }
  });

  test('an :authority naming a denied destination inside the tunnel gets 403 on that stream only', async () => {
    const { session } = await h2Session(gw.explicitPort, 'h2.test', h2Port, ca);
    try {
      const denied = await h2Request(session, '/x', { ':authority': 'denied.test' });
      expect(denied.status).toBe(403);
      expect(denied.body).toContain('domain fronting');
      const ok = await h2Request(session, '/after');
      expect(ok.status).toBe(200);
    } finally {
      session.close();
    }
  });

  test('HTTP/2 protocol garbage ends that session; the gateway stays up', async () => {
    const tunnel = await connectTunnel(gw.explicitPort, `h2.test:${h2Port}`);
    const secure = tls.connect({ socket: tunnel, servername: 'h2.test', ALPNProtocols: ['h2'], ca });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    expect(secure.alpnProtocol).toBe('h2');
    secure.on('error', () => undefined);
    const received: Buffer[] = [];
    secure.on('data', (chunk: Buffer) => received.push(chunk));
    // A valid preface followed by a frame longer than SETTINGS_MAX_FRAME_SIZE on an even
    // (server-initiated) stream id: a connection error (RFC 9113 4.2, 5.1.1).
    secure.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02]), Buffer.alloc(64, 0x41)]));
    const frameTypes = (): number[] => {
      const bytes = Buffer.concat(received);
      const types: number[] = [];
      for (let at = 0; at + 9 <= bytes.length && types.length < 100; at += 9 + bytes.readUIntBE(at, 3)) types.push(bytes[at + 3]!);
      return types;
    };
    const GOAWAY = 0x07;
    const seen = await eventually(frameTypes, (types) => types.includes(GOAWAY), 5000);
    expect(seen).toContain(GOAWAY);
    secure.destroy();
    const again = await curlH2(`https://h2.test:${h2Port}/still-up`);
    expect(again.stdout.toString().endsWith('2 200')).toBe(true);
  });
});
