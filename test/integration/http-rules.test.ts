import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';

/**
 * HTTP rules through the one forwarding path, both ways in: plain HTTP through the explicit
 * proxy, and HTTPS decrypted inside an inspected CONNECT tunnel. The origins record what they
 * received, so header edits are checked where they land and denials are checked to never
 * reach the origin.
 */
const POLICY = `rules:
  - name: origin-tests
    match: origin.test
    action: inspect
    http:
      - name: admin-public
        request: { path: "/admin/public/**" }
        action: allow
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
        reason: the admin console is not reachable from here
      - name: no-delete
        request: { method: [DELETE] }
        action: deny
      - name: no-debug
        request: { query: { debug: true } }
        action: deny
        reason: debug mode is off limits
      - name: no-bots
        request: { headers: { User-Agent: "evilbot/*" } }
        action: deny
      - name: small-uploads
        request: { body_larger_than: 1KiB }
        action: deny
        reason: uploads over 1 KiB are refused
      - name: trial-header
        request: { headers: { X-Trial: true } }
        action: log
      - name: strip-client-data
        action: strip_header
        strip_headers: { request: [X-Client-Data], response: [X-Origin-Secret] }
      - name: tenant
        action: set_header
        set_headers: { request: { X-Tenant: acme }, response: { X-Frame-Options: DENY } }
      - name: no-404
        response: { status: ["400-404"] }
        action: deny
        reason: hide missing pages
      - name: no-json-when-asked
        request: { query: { ct: deny } }
        response: { content_type: [application/json] }
        action: deny
      - name: no-cookies-to-client
        request: { path: "/cookie" }
        action: strip_header
        strip_headers: { response: [Set-Cookie] }
      - name: watch-slow
        request: { path: "/slow" }
        response: { status: [200] }
        action: log
      - name: tiny-streams
        request: { path: "/slow", query: { cut: true } }
        response: { larger_than: 2 }
        action: deny
      - name: small-downloads
        request: { path: "/bytes" }
        response: { larger_than: 1000 }
        action: deny
        reason: downloads over 1000 bytes are refused
`;

describe.each(['http', 'https'] as const)('HTTP rules over %s', (scheme) => {
  let gw: TestGateway;
  let origin: Origin;
  let base: string;
  let clientArgs: string[];

  beforeAll(async () => {
    if (scheme === 'https') {
      const dir = tempDir('rules');
      const root = issue({ commonName: 'rules root', isCa: true });
      const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
      origin = await startHttpsOrigin('rules', { cert: leaf.certPem, key: leaf.keyPem });
      gw = await startTestGateway({ allowedPorts: { tunnel: [origin.port], http: [] }, upstreamCaFile: writePem(dir, 'root.pem', root.certPem), policies: { 'rules.yaml': POLICY } });
      clientArgs = ['-x', gw.proxy, '--cacert', gw.caFile];
    } else {
      origin = await startHttpOrigin('rules');
      gw = await startTestGateway({ allowedPorts: { tunnel: [], http: [origin.port] }, policies: { 'rules.yaml': POLICY } });
      clientArgs = ['-x', gw.proxy];
    }
    base = `${scheme}://origin.test:${origin.port}`;
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const reached = (path: string): boolean => origin.seen.some((s) => s.url === path);
  async function recordFor(path: string): Promise<RequestRecord> {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === path));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === path);
    expect(record).toBeDefined();
    return record!;
  }

  test.each([
    ['path', [], '/admin/users', 'no-admin', /the admin console is not reachable/],
    ['method', ['-X', 'DELETE'], '/hello?m=delete', 'no-delete', /HTTP rule no-delete denies this request/],
    ['query', [], '/hello?debug=1', 'no-debug', /debug mode is off limits/],
    ['header', ['-A', 'evilbot/2.0'], '/hello?ua=bot', 'no-bots', /no-bots/],
    ['body size (Content-Length)', ['--data-binary', 'x'.repeat(2000)], '/echo?big=1', 'small-uploads', /uploads over 1 KiB/],
  ])('request %s deny: 403 naming reason and request id; never reaches the origin', async (_kind, args, path, rule, reason) => {
    const res = await curl([...clientArgs, ...(args as string[]), `${base}${path}`]);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(reason as RegExp);
    expect(res.body).toContain(rule as string);
    const requestId = res.headers['x-tollgate-request-id']!;
    expect(requestId).toBeTruthy();
    expect(res.body).toContain(requestId);
    expect(reached(path as string)).toBe(false);
    const record = await recordFor(path as string);
    expect(record.status).toBe(403);
    expect(record.http_rule).toBe(rule);
    // The record says what happened: denied, by which HTTP rule (under which destination rule), and why.
    expect(record).toMatchObject({ action: 'deny', decision_code: 'http_rule', rule: 'origin-tests' });
    expect(record.reason).toMatch(reason as RegExp);
    // The block page was sent to the client, and the record counts it.
    expect(record.bytes_to_client).toBe(Buffer.byteLength(res.body));
  });

  test('a denied request leaves the connection usable for the next one', async () => {
    const res = await curl([...clientArgs, `${base}/admin/keepalive`, `${base}/hello?after=deny`]);
    expect(res.status).toBe(200);
    expect(res.body).toContain('the admin console is not reachable');
    expect(res.body).toContain('hello from rules');
    const denied = await recordFor('/admin/keepalive');
    const allowed = await recordFor('/hello?after=deny');
    expect(allowed.flow_id).toBe(denied.flow_id);
  });

  test('allow ends the evaluation: a later deny (path) and response rules (404) do not apply', async () => {
    const res = await curl([...clientArgs, `${base}/admin/public/page`]);
    expect(res.status).toBe(404);
    expect(reached('/admin/public/page')).toBe(true);
    expect(await recordFor('/admin/public/page')).toMatchObject({ http_rule: 'admin-public', action: 'inspect' });
  });

  test('strip_header and set_header edit what reaches the origin and the client', async () => {
    const res = await curl([...clientArgs, '-H', 'X-Client-Data: secret-telemetry', '-H', 'X-Tenant: evil', `${base}/hello?edits=1`]);
    expect(res.status).toBe(200);
    expect(res.headers['x-frame-options']).toBe('DENY');
    const seen = origin.seen.find((s) => s.url === '/hello?edits=1')!;
    expect(seen.headers['x-client-data']).toBeUndefined();
    expect(seen.headers['x-tenant']).toBe('acme');
    const record = await recordFor('/hello?edits=1');
    expect(record.http_rule).toBeNull();
    expect(record.flagged_by).toEqual([]);
  });

  test("a client's Connection header cannot remove a field set_header adds", async () => {
    const res = await curl([...clientArgs, '--http1.1', '-H', 'Connection: keep-alive, X-Tenant, X-Client-Data', '-H', 'X-Client-Data: secret-telemetry', `${base}/hello?connection-names=1`]);
    expect(res.status).toBe(200);
    const seen = origin.seen.find((s) => s.url === '/hello?connection-names=1')!;
    expect(seen.headers['x-tenant']).toBe('acme');
    // What the client sent and named in Connection is still dropped (hop-by-hop, RFC 9110 7.6.1).
    expect(seen.headers['x-client-data']).toBeUndefined();
  });

  test('log is report-only: the request goes through and the record is flagged', async () => {
    const res = await curl([...clientArgs, '-H', 'X-Trial: 1', `${base}/hello?trial=1`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from rules\n');
    expect(reached('/hello?trial=1')).toBe(true);
    const record = await recordFor('/hello?trial=1');
    expect(record.flagged_by).toEqual(['trial-header']);
    expect(record.http_rule).toBeNull();
    expect(record).toMatchObject({ action: 'inspect', decision_code: 'rule' });
  });

  test('response status deny: 403 instead of the origin answer', async () => {
    const res = await curl([...clientArgs, `${base}/missing`]);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/hide missing pages/);
    expect(await recordFor('/missing')).toMatchObject({ http_rule: 'no-404', action: 'deny', decision_code: 'http_rule', reason: 'hide missing pages' });
  });

  test('response content type deny (with a request condition)', async () => {
    expect((await curl([...clientArgs, `${base}/echo?ct=deny`])).status).toBe(403);
    expect((await curl([...clientArgs, `${base}/echo?ct=ok`])).status).toBe(200);
  });

  test('response size deny by Content-Length', async () => {
    const big = await curl([...clientArgs, `${base}/bytes?n=2000`]);
    expect(big.status).toBe(403);
    expect(big.body).toMatch(/downloads over 1000 bytes/);
    const small = await curl([...clientArgs, `${base}/bytes?n=500`]);
    expect(small.status).toBe(200);
    expect(small.body).toHaveLength(500);
  });

  test('response strip_header: the client never sees the stripped field', async () => {
    const res = await curl([...clientArgs, `${base}/cookie`]);
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.body).toBe('cookie set\n');
  });

  test('response log rule flags the record and changes nothing', async () => {
    const res = await curl([...clientArgs, `${base}/slow?ms=1`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('slow\n');
    expect((await recordFor('/slow?ms=1')).flagged_by).toEqual(['watch-slow']);
  });

  test('response size counted while a body without Content-Length streams: the response is cut', async () => {
    const res = await curl([...clientArgs, `${base}/slow?ms=1&cut=1`]);
    // The status line is already committed: the client sees the connection cut, possibly
    // before the (buffered) headers went out.
    expect([0, 200]).toContain(res.status);
    expect(res.exitCode).not.toBe(0);
    expect(res.body).not.toBe('slow\n');
    const record = await recordFor('/slow?ms=1&cut=1');
    expect(record.http_rule).toBe('tiny-streams');
    expect(record.flagged_by).toEqual(['watch-slow']);
  });

  test('request body size deny counted while a chunked upload streams', async () => {
    const res = await curl([...clientArgs, '-H', 'Transfer-Encoding: chunked', '--data-binary', 'y'.repeat(4000), `${base}/echo?chunked=1`]);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/uploads over 1 KiB/);
    const record = await recordFor('/echo?chunked=1');
    expect(record.http_rule).toBe('small-uploads');
    // A small chunked upload passes.
    const ok = await curl([...clientArgs, '-H', 'Transfer-Encoding: chunked', '--data-binary', 'y'.repeat(100), `${base}/echo?chunked=2`]);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).length).toBe(100);
  });
});
