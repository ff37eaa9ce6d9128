import { startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { rawExchange } from './support/raw-tcp';
import { curl } from './support/run';
import { chunked, statuses, tlsRawExchange } from './support/tls-raw';

/**
 * Review item 1: request smuggling through bodies on methods whose requests Node sends without
 * framing by default (GET, HEAD, DELETE, OPTIONS). A chunked body carrying a second request
 * must never reach the origin as that second request: every forwarded body is framed, or the
 * request is refused. The origin here is a real HTTP parser, so a smuggled request would show
 * up in its record of requests.
 */
const SMUGGLED = 'GET /admin/secret HTTP/1.1\r\nHost: storage.test\r\n\r\n';

describe('bypass: bodies smuggled on GET/HEAD/DELETE/OPTIONS', () => {
  let lab: LabOrigin;
  let gw: TestGateway;

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startLabGateway(lab);
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

  test('curl: a chunked GET carrying a request is forwarded framed, as one request', async () => {
    const before = lab.seen.length;
    const res = await curl(['-x', gw.proxy, '-X', 'GET', '-H', 'Transfer-Encoding: chunked', '--data-binary', SMUGGLED, `http://storage.test:${lab.httpPort}/public/readme`]);
    await settle();
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
    const arrived = lab.seen.slice(before);
    // Framed and forwarded (the origin read the body as a body), or refused outright.
    if (res.status === 200) {
      expect(arrived).toHaveLength(1);
      expect(arrived[0]!.path).toBe('/public/readme');
      expect(arrived[0]!.body).toBe(SMUGGLED);
      expect(arrived[0]!.complete).toBe(true);
    } else {
      expect(res.status).toBe(400);
      expect(arrived).toEqual([]);
    }
  });

  test.each(['GET', 'HEAD', 'DELETE', 'OPTIONS'])('explicit proxy, %s with a chunked body: no second request reaches the origin', async (method) => {
    const host = `storage.test:${lab.httpPort}`;
    const reply = await rawExchange(gw.explicitPort, `${method} http://${host}/public/readme HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(SMUGGLED)}`);
    await settle();
    expect(statuses(reply).length).toBeGreaterThanOrEqual(1);
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
    for (const seen of lab.requestsFor('/public/readme').filter((s) => s.method === method)) {
      expect(seen.complete).toBe(true);
      if (seen.body !== '') expect(seen.body).toBe(SMUGGLED);
    }
  });

  test.each(['GET', 'HEAD', 'DELETE', 'OPTIONS'])('inspected tunnel (openssl s_client), %s with a chunked body: no second request reaches the origin', async (method) => {
    const host = `storage.test:${lab.httpsPort}`;
    const { text, verified } = await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: host,
      sni: 'storage.test',
      caFile: gw.caFile,
      payload: `${method} /public/readme HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(SMUGGLED)}`,
    });
    await settle();
    expect(verified).toBe(true);
    expect(statuses(text).length).toBeGreaterThanOrEqual(1);
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
  });

  test('a chunked body that turns malformed after its first chunk: the origin request is aborted, never ended well-formed', async () => {
    // other.test has no DLP, so the first chunk is passed on at once and the origin sees the
    // request start; what matters is how it ends.
    const host = `other.test:${lab.httpPort}`;
    const before = lab.seen.length;
    const head = `POST http://${host}/upload HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked('hello', false)}`;
    const reply = await rawExchange(gw.explicitPort, [head, 'zz\r\nnot a chunk\r\n0\r\n\r\n'], 3000, 300);
    await settle();
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    const arrived = lab.seen.slice(before);
    expect(arrived).toHaveLength(1);
    expect(arrived[0]!.body).toBe('hello');
    expect(arrived[0]!.complete).toBe(false);
  });
});
