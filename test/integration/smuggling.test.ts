import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { type RecordingOrigin, rawExchange, startRecordingOrigin } from './support/raw-tcp';

/**
 * Request smuggling and parser strictness: each ambiguous or malformed message is refused with
 * 400 and nothing reaches the origin (a raw TCP listener that records every connection and byte).
 */

describe('request smuggling and parser strictness', () => {
  let origin: RecordingOrigin;
  let gw: TestGateway;
  let host = '';
  let url = '';

  beforeAll(async () => {
    origin = await startRecordingOrigin({ replyAt: 'afterHeaders' });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'a.yaml': 'rules:\n  - match: [origin.test, other.test]\n    action: splice\n' },
    });
    host = `origin.test:${origin.port}`;
    url = `http://${host}/submit`;
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const cases: [string, () => string][] = [
    ['Content-Length with Transfer-Encoding', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding with Content-Length', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`],
    ['repeated differing Content-Length', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`],
    ['a Content-Length list with differing values', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3, 4\r\n\r\nabcd`],
    ['a non-numeric Content-Length', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: +4\r\n\r\nabcd`],
    ['a Transfer-Encoding other than chunked', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n`],
    ['chunked not last', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    ['an obfuscated Transfer-Encoding', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
    ['two Transfer-Encoding fields', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`],
    ['a bad chunk size', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`],
    ['an overflowing chunk size', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n`],
    ['a chunk size with a bare LF', () => `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`],
    ['obsolete line folding', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX-Folded: a\r\n b\r\n\r\n`],
    ['a bare CR inside a header value', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX-A: a\rb\r\n\r\n`],
    ['a bare CR as a line ending', () => `GET ${url} HTTP/1.1\rHost: ${host}\r\n\r\n`],
    ['whitespace before the colon', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
    ['a space inside a header name', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX Bad: a\r\n\r\n`],
    ['a NUL byte in a header value', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX-A: a\u0000b\r\n\r\n`],
    ['a control byte in a header name', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX-\u0001: a\r\n\r\n`],
    ['absolute-form authority disagreeing with Host', () => `GET ${url} HTTP/1.1\r\nHost: other.test:${origin.port}\r\n\r\n`],
    ['absolute-form authority disagreeing with Host on the port', () => `GET ${url} HTTP/1.1\r\nHost: origin.test:1\r\n\r\n`],
    ['two Host fields', () => `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nHost: ${host}\r\n\r\n`],
    ['an unknown HTTP version', () => `GET ${url} HTTP/1.7\r\nHost: ${host}\r\n\r\n`],
    ['HTTP/2.0 in an HTTP/1 request line', () => `GET ${url} HTTP/2.0\r\nHost: ${host}\r\n\r\n`],
  ];

  test.each(cases)('%s: 400 and nothing reaches the origin', async (_name, payload) => {
    const reply = await rawExchange(gw.explicitPort, payload());
    expect(reply).toMatch(/^HTTP\/1\.1 (400|505) /);
    // Give a forwarded request every chance to arrive before concluding none did.
    await new Promise((r) => setTimeout(r, 50));
    expect(origin.connections()).toBe(0);
  });

  test('each refusal is logged with its reason', () => {
    const lines = gw.logs().filter((l) => l.msg === 'request refused by the HTTP parser' || l.msg === 'request refused');
    expect(lines.length).toBeGreaterThanOrEqual(cases.length);
  });

  test('a well-formed chunked request is forwarded (control), re-framed by the gateway', async () => {
    const reply = await rawExchange(gw.explicitPort, `POST ${url} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(origin.connections()).toBe(1);
    expect(origin.received()).toMatch(/^POST \/submit HTTP\/1\.1\r\n/);
    expect(origin.received()).not.toMatch(/content-length/i);
  });
});

describe('request smuggling inside an inspected tunnel', () => {
  let gw: TestGateway;
  let server: tls.Server;
  let port = 0;
  let connections = 0;

  beforeAll(async () => {
    const dir = tempDir('smuggle');
    const ca = issue({ commonName: 'smuggling origin CA', isCa: true });
    const leaf = issue({ commonName: 'secure.test', dnsNames: ['secure.test'], issuer: ca });
    // Counts connections that carried request bytes: the gateway may open a TLS connection
    // only to learn the origin's ALPN, which sends no request.
    server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: ['http/1.1'] }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        connections++;
        socket.end('HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [port], http: [] },
      hostNames: ['secure.test'],
      upstreamCaFile: writePem(dir, 'origin-ca.pem', ca.certPem),
      policies: { 'a.yaml': 'rules:\n  - match: secure.test\n    action: inspect\n' },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function throughTunnel(payload: string): Promise<string> {
    return new Promise((resolve) => {
      const raw = net.connect(gw.explicitPort, '127.0.0.1', () => raw.write(`CONNECT secure.test:${port} HTTP/1.1\r\nHost: secure.test:${port}\r\n\r\n`));
      raw.on('error', () => resolve(''));
      raw.once('data', (chunk: Buffer) => {
        if (!chunk.toString().startsWith('HTTP/1.1 200')) {
          raw.destroy();
          resolve('');
          return;
        }
        const secure = tls.connect({ socket: raw, servername: 'secure.test', ca: readFileSync(gw.caFile, 'utf8') }, () => secure.write(payload));
        let data = '';
        secure.on('data', (d: Buffer) => (data += d.toString('latin1')));
        secure.on('error', () => undefined);
        const timer = setTimeout(() => secure.destroy(), 3000);
        secure.on('close', () => {
          clearTimeout(timer);
          resolve(data);
        });
      });
    });
  }

  test.each([
    ['Content-Length with Transfer-Encoding', 'POST /x HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['differing Content-Lengths', 'POST /x HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['a bad chunk size', 'POST /x HTTP/1.1\r\nHost: secure.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['obsolete line folding', 'GET /x HTTP/1.1\r\nHost: secure.test\r\nX-Folded: a\r\n b\r\n\r\n'],
    ['a Transfer-Encoding other than chunked', 'POST /x HTTP/1.1\r\nHost: secure.test\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n'],
  ])('%s: 400 and nothing reaches the origin', async (_name, payload) => {
    const reply = await throughTunnel(payload);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    await new Promise((r) => setTimeout(r, 50));
    expect(connections).toBe(0);
  });

  test('a well-formed request goes through (control)', async () => {
    const reply = await throughTunnel('GET /x HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(connections).toBeGreaterThanOrEqual(1);
  });
});
