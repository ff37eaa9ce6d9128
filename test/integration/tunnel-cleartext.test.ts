import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { curl } from './support/run';

/**
 * Cleartext inside CONNECT and SOCKS tunnels, with real curl: HTTP to an inspected destination
 * is served like explicit-proxy HTTP (rules, one record per request, the tunnel's target and
 * port authoritative); HTTP to a spliced one is relayed untouched; bytes that are neither TLS
 * nor HTTP follow the rule's non_tls.
 */

// A loopback address of its own, so port 80 is free for this suite's origin.
const PORT80_ADDRESS = `127.${80 + Math.floor(Math.random() * 100)}.${1 + Math.floor(Math.random() * 200)}.80`;

const POLICY = `rules:
  - name: clear-inspected
    match: [inspect.test, port80.test]
    action: inspect
    http:
      - name: no-secret
        request: { path: "/secret/**" }
        action: deny
  - name: clear-spliced
    match: origin.test
    action: splice
  - name: raw-spliced
    match: raw.test
    action: splice
    non_tls: splice
  - name: raw-default
    match: rawdeny.test
    action: splice
`;

function connections(records: readonly { type: string }[]): ConnectionRecord[] {
  return records.filter((r): r is ConnectionRecord => r.type === 'connection');
}

/** A banner-exchange origin (SSH-like): it answers a client banner with its own, then echoes. */
function startBannerOrigin(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.once('data', () => {
      socket.write('SSH-2.0-origin\r\n');
      socket.on('data', (chunk) => socket.write(chunk));
    });
    socket.on('error', () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
  });
}

/** CONNECT through the explicit proxy, then one exchange of raw bytes; returns what came back. */
function connectAndExchange(proxyPort: number, authority: string, payload: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    let text = '';
    let tunnelled = false;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (!tunnelled && text.includes('\r\n\r\n')) {
        tunnelled = true;
        socket.write(payload);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

describe('cleartext in tunnels, with real curl', () => {
  let plain: Origin;
  let port80: http.Server;
  const port80Seen: string[] = [];
  let banner: { port: number; close(): Promise<void> };
  let gw: TestGateway;
  let socks: string;

  beforeAll(async () => {
    plain = await startHttpOrigin('plain');
    banner = await startBannerOrigin();
    port80 = http.createServer((req, res) => {
      port80Seen.push(`${req.headers.host} ${req.url}`);
      res.end(`port 80 says ${req.url}\n`);
    });
    await new Promise<void>((resolve) => port80.listen(80, PORT80_ADDRESS, resolve));
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  socks: 127.0.0.1:0',
      allowedPorts: { tunnel: [plain.port, 80, banner.port], http: [] },
      policies: { 'clear.yaml': POLICY },
      upstreamSection: [
        'upstream:',
        '  hosts:',
        ...['origin.test', 'inspect.test', 'raw.test', 'rawdeny.test'].map((n) => `    ${n}: 127.0.0.1`),
        `    port80.test: ${PORT80_ADDRESS}`,
        '  allow_addresses: [127.0.0.0/8]',
      ].join('\n'),
    });
    socks = `127.0.0.1:${gw.gateway.address('socks')!.port}`;
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await banner.close();
    await new Promise<void>((resolve) => port80.close(() => resolve()));
  });

  async function connectionFor(frontend: string, target: string, count = 1): Promise<ConnectionRecord[]> {
    return eventually(
      async () => connections(await gw.audit()).filter((r) => r.frontend === frontend && r.target === target),
      (list) => list.length >= count,
    );
  }

  test('--socks5-hostname, plain HTTP to an inspected name on its own port: served and recorded per request', async () => {
    const res = await curl(['--socks5-hostname', socks, `http://inspect.test:${plain.port}/hello`]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from plain\n');
    const [record] = await connectionFor('socks', `inspect.test:${plain.port}`);
    expect(record).toMatchObject({ action: 'inspect', first_bytes: 'http', rule: 'clear-inspected', requests: 1 });
    const requests = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.flow_id === record!.flow_id);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ scheme: 'http', host: 'inspect.test', port: plain.port, method: 'GET', path: '/hello', status: 200 });
    // The origin saw the tunnel's target as its Host, port included.
    expect(plain.seen.at(-1)?.headers.host).toBe(`inspect.test:${plain.port}`);
  });

  test('--socks4a: the same, decided by the name', async () => {
    const before = plain.seen.length;
    const res = await curl(['--socks4a', socks, `http://inspect.test:${plain.port}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from plain\n');
    expect(plain.seen.length).toBe(before + 1);
    const records = await connectionFor('socks', `inspect.test:${plain.port}`, 2);
    expect(records[1]).toMatchObject({ action: 'inspect', first_bytes: 'http' });
  });

  test('curl -p -x: CONNECT to port 80 of an inspected name, then plain HTTP, served through the HTTP path', async () => {
    const res = await curl(['-p', '-x', gw.proxy, 'http://port80.test/path?q=1']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.body).toBe('port 80 says /path?q=1\n');
    expect(port80Seen.at(-1)).toBe('port80.test /path?q=1');
    const [record] = await connectionFor('explicit-connect', 'port80.test:80');
    expect(record).toMatchObject({ action: 'inspect', first_bytes: 'http', requests: 1 });
    const requests = await gw.requestRecords('/path?q=1');
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ scheme: 'http', host: 'port80.test', port: 80, status: 200 });
  });

  test('a Host that disagrees with the tunnel target is refused as fronting; nothing reaches the origin', async () => {
    const before = plain.seen.length;
    const res = await curl(['--socks5-hostname', socks, '-H', 'Host: other.test', `http://inspect.test:${plain.port}/hello`]);
    expect(res.status).toBe(403);
    expect(plain.seen.length).toBe(before);
    const requests = (await gw.requestRecords('/hello')).filter((r) => r.status === 403);
    expect(requests.at(-1)).toMatchObject({ action: 'deny', decision_code: 'fronting' });
    // A Host naming the right host on another port disagrees too: the port is the tunnel's.
    const wrongPort = await curl(['--socks5-hostname', socks, '-H', 'Host: inspect.test:1', `http://inspect.test:${plain.port}/hello`]);
    expect(wrongPort.status).toBe(403);
    expect(plain.seen.length).toBe(before);
  });

  test.each([
    ['a smuggling attempt (Content-Length with Transfer-Encoding)', 'POST /x HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'TG_ERR_BAD_REQUEST'],
    ['two spaces in the request line', 'GET  /x HTTP/1.1\r\nHost: HOST\r\n\r\n', 400, 'TG_ERR_BAD_REQUEST'],
  ])('a request the parser refuses (%s) is answered and on the connection record', async (_name, raw, status, code) => {
    const authority = `inspect.test:${plain.port}`;
    const before = plain.seen.length;
    const text = await connectAndExchange(gw.explicitPort, authority, raw.replace('HOST', authority));
    expect(text).toMatch(new RegExp(`HTTP/1\\.1 ${status} `));
    expect(plain.seen.length).toBe(before);
    const records = await eventually(
      async () => connections(await gw.audit()).filter((r) => r.frontend === 'explicit-connect' && r.target === authority && r.error?.startsWith(code)),
      (list) => list.length > 0,
    );
    expect(records.at(-1)).toMatchObject({ close: 'refused', first_bytes: 'http' });
  });

  test("an HTTP rule's deny applies to cleartext inside the tunnel", async () => {
    const before = plain.seen.length;
    const res = await curl(['--socks5-hostname', socks, `http://inspect.test:${plain.port}/secret/x`]);
    expect(res.status).toBe(403);
    expect(plain.seen.length).toBe(before);
    const [request] = await gw.requestRecords('/secret/x');
    expect(request).toMatchObject({ status: 403, http_rule: 'no-secret' });
  });

  test('a spliced name: cleartext relayed untouched, no request record', async () => {
    const res = await curl(['--socks5-hostname', socks, '-H', 'Host: whatever.example', `http://origin.test:${plain.port}/hello`]);
    expect(res.status).toBe(200);
    expect(plain.seen.at(-1)?.headers.host).toBe('whatever.example');
    const [record] = await connectionFor('socks', `origin.test:${plain.port}`);
    expect(record).toMatchObject({ action: 'splice', first_bytes: 'http', requests: 0 });
    expect(record!.bytes_to_client).toBeGreaterThan(0);
  });

  test('bytes that are neither TLS nor HTTP: refused under the default non_tls: deny, the record says so', async () => {
    const text = await connectAndExchange(gw.explicitPort, `rawdeny.test:${banner.port}`, 'SSH-2.0-client\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).not.toContain('SSH-2.0-origin');
    const [record] = await connectionFor('explicit-connect', `rawdeny.test:${banner.port}`);
    expect(record).toMatchObject({ action: 'deny', first_bytes: 'other', close: 'refused', rule: 'raw-default' });
    expect(record!.reason).toMatch(/non_tls: deny/);
  });

  test('... and relayed both ways under non_tls: splice', async () => {
    const text = await connectAndExchange(gw.explicitPort, `raw.test:${banner.port}`, 'SSH-2.0-client\r\n', 1500);
    expect(text).toContain('SSH-2.0-origin\r\n');
    const [record] = await connectionFor('explicit-connect', `raw.test:${banner.port}`);
    expect(record).toMatchObject({ action: 'splice', first_bytes: 'other', rule: 'raw-spliced' });
    expect(record!.bytes_to_client).toBeGreaterThan(0);
  });
});
