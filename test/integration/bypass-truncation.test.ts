import type { RequestRecord } from '../../src/audit/record-fields';
import { startLabOrigin, type LabOrigin } from './support/bypass-lab';
import { startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';

/**
 * Review item 13 (response size): a response-size deny on a body without Content-Length is
 * decided while the body streams, after the headers went out. The client must then see a
 * transfer no client takes as complete: a reset (or RST_STREAM), never a clean end, whatever
 * framing its response had (chunked, HTTP/1.0 close-delimited, HTTP/2).
 */
const POLICY = `rules:
  - name: storage
    match: storage.test
    action: inspect
    http:
      - name: small-downloads
        request: { path: "/download/**" }
        response: { larger_than: 10000 }
        action: deny
`;

describe('bypass: a response cut by a size rule never looks complete', () => {
  let lab: LabOrigin;
  let gw: TestGateway;

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startTestGateway({
      allowedPorts: { tunnel: [lab.httpsPort], http: [lab.httpPort] },
      hostNames: ['storage.test'],
      upstreamCaFile: lab.caFile,
      policies: { 'lab.yaml': POLICY },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const plain = (p: string): string => `http://storage.test:${lab.httpPort}${p}`;
  const secure = (p: string): string => `https://storage.test:${lab.httpsPort}${p}`;

  test.each([
    ['plain HTTP/1.0 (close-delimited)', () => ['-0', '-x', gw.proxy, plain('/download/a?stream=200000')]],
    ['plain HTTP/1.1 (chunked)', () => ['-x', gw.proxy, plain('/download/b?stream=200000')]],
    ['inspected HTTP/1.0', () => ['-0', '-x', gw.proxy, '--cacert', gw.caFile, secure('/download/c?stream=200000')]],
    ['inspected HTTP/1.1', () => ['--http1.1', '-x', gw.proxy, '--cacert', gw.caFile, secure('/download/d?stream=200000')]],
    ['inspected HTTP/2', () => ['--http2', '-x', gw.proxy, '--cacert', gw.caFile, secure('/download/e?stream=200000')]],
  ])('%s: curl reports an incomplete transfer', async (_name, args) => {
    const res = await curl(args());
    expect(res.status).toBe(200);
    expect(res.exitCode).not.toBe(0);
    expect(res.body.length).toBeLessThan(200000);
  });

  test('a small enough response passes whole (control), HTTP/1.0 inside TLS included', async () => {
    const res = await curl(['-0', '-x', gw.proxy, plain('/download/f?stream=5000')]);
    expect(res.exitCode).toBe(0);
    expect(res.body.length).toBe(5000);
    // curl -0 offers only http/1.0 by ALPN; the inspected side must accept it.
    const tls = await curl(['-0', '-x', gw.proxy, '--cacert', gw.caFile, secure('/download/f?stream=5000')]);
    expect(tls.exitCode).toBe(0);
    expect(tls.body.length).toBe(5000);
  });

  test('the records say which rule cut the response', async () => {
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path.startsWith('/download/') && !r.path.includes('/f?'));
    expect(records).toHaveLength(5);
    for (const r of records) {
      expect(r).toMatchObject({ status: 200, http_rule: 'small-downloads' });
      expect(r.error).toMatch(/response cut after \d+ bytes: larger than HTTP rule small-downloads allows/);
    }
  });
});
