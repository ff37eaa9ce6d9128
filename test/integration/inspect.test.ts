import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl, run } from './support/run';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface BadOrigin {
  readonly name: string;
  readonly reason: RegExp;
  origin?: Origin;
}

describe('inspect: minted certificates, verified origins, audit', () => {
  let gw: TestGateway;
  let good: Origin;
  let insecure: Origin;
  const bad: BadOrigin[] = [
    { name: 'expired.test', reason: /expired/ },
    { name: 'future.test', reason: /not yet valid/ },
    { name: 'selfsigned.test', reason: /self-signed/ },
    { name: 'wronghost.test', reason: /hostname mismatch/ },
    { name: 'unknownca.test', reason: /unknown issuer/ },
    { name: 'nochain.test', reason: /incomplete chain/ },
  ];

  beforeAll(async () => {
    const dir = tempDir('inspect');
    const root = issue({ commonName: 'origin root', isCa: true });
    const intermediate = issue({ commonName: 'origin intermediate', isCa: true, issuer: root });
    const untrusted = issue({ commonName: 'somebody else', isCa: true });
    const rootFile = writePem(dir, 'root.pem', root.certPem);
    const leafFor = (name: string, extra: Partial<Parameters<typeof issue>[0]> = {}) => issue({ commonName: name, dnsNames: [name], issuer: root, ...extra });

    const goodLeaf = leafFor('origin.test', { dnsNames: ['origin.test', 'other.test'] });
    good = await startHttpsOrigin('good', { cert: goodLeaf.certPem, key: goodLeaf.keyPem });
    const selfSigned = issue({ commonName: 'selfsigned.test', dnsNames: ['selfsigned.test', 'insecure.test'] });
    insecure = await startHttpsOrigin('insecure', { cert: selfSigned.certPem, key: selfSigned.keyPem });

    const certs: Record<string, { cert: string; key: string }> = {};
    const expired = leafFor('expired.test', { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    certs['expired.test'] = { cert: expired.certPem, key: expired.keyPem };
    const future = leafFor('future.test', { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    certs['future.test'] = { cert: future.certPem, key: future.keyPem };
    certs['selfsigned.test'] = { cert: selfSigned.certPem, key: selfSigned.keyPem };
    const wrong = leafFor('somewhere-else.test');
    certs['wronghost.test'] = { cert: wrong.certPem, key: wrong.keyPem };
    const unknown = issue({ commonName: 'unknownca.test', dnsNames: ['unknownca.test'], issuer: untrusted });
    certs['unknownca.test'] = { cert: unknown.certPem + untrusted.certPem, key: unknown.keyPem };
    const nochain = issue({ commonName: 'nochain.test', dnsNames: ['nochain.test'], issuer: intermediate });
    certs['nochain.test'] = { cert: nochain.certPem, key: nochain.keyPem };
    for (const entry of bad) entry.origin = await startHttpsOrigin(entry.name, certs[entry.name]!);

    const ports = [good.port, insecure.port, ...bad.map((b) => b.origin!.port)];
    gw = await startTestGateway({
      allowedPorts: { tunnel: ports, http: [80] },
      hostNames: [...bad.map((b) => b.name), 'insecure.test'],
      upstreamCaFile: rootFile,
      policies: {
        'inspect.yaml': `rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n  - match: denied.test\n    action: deny\n  - name: lab-device\n    match: insecure.test\n    action: inspect\n    upstream_insecure: true\n`,
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await good.close();
    await insecure.close();
    for (const entry of bad) await entry.origin?.close();
  });

  test('curl trusting the gateway CA gets the body; the audit record has the request', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${good.port}/hello?q=1`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from good\n');
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === '/hello?q=1'));
    const rec = records.find((x): x is RequestRecord => x.type === 'request' && x.path === '/hello?q=1')!;
    expect(rec).toMatchObject({
      scheme: 'https',
      host: 'origin.test',
      port: good.port,
      sni: 'origin.test',
      method: 'GET',
      status: 200,
      action: 'inspect',
      rule: 'inspect-tests',
      client: '127.0.0.1',
      frontend: 'explicit-connect',
    });
    expect(rec.bytes_to_client).toBe('hello from good\n'.length);
    expect(rec.upstream_cert_sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(rec.client_tls?.version).toMatch(/^TLSv1\.[23]$/);
    expect(rec.upstream_tls?.cipher).toBeTruthy();
    expect(rec.duration_ms).toBeGreaterThan(0);
    expect(rec.request_id).toMatch(/^[A-Za-z0-9_-]{12}-1$/);
  });

  test('openssl s_client through CONNECT sees issuer = gateway CA and the right SAN', async () => {
    const s = await run(
      'openssl',
      ['s_client', '-proxy', `127.0.0.1:${gw.explicitPort}`, '-connect', `origin.test:${good.port}`, '-servername', 'origin.test', '-CAfile', gw.caFile, '-verify_return_error'],
      { input: 'Q\n', timeoutMs: 10_000 },
    );
    const out = s.stdout.toString();
    expect(out).toContain('Verify return code: 0 (ok)');
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)![0];
    const leaf = new X509Certificate(pem);
    const ca = new X509Certificate(readFileSync(gw.caFile));
    expect(leaf.issuer).toBe(ca.subject);
    expect(leaf.subjectAltName).toBe('DNS:origin.test');
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(out).toMatch(/ALPN protocol: http\/1\.1|No ALPN negotiated/);
  });

  test('python3 urllib through the proxy with the gateway CA works', async () => {
    const script = [
      'import ssl, sys, urllib.request',
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(gw.caFile)})`,
      `opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": ${JSON.stringify(gw.proxy)}}), urllib.request.HTTPSHandler(context=ctx))`,
      `print(opener.open("https://origin.test:${good.port}/hello", timeout=10).read().decode(), end="")`,
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 15_000 });
    expect(result.stderr).toBe('');
    expect(result.stdout.toString()).toBe('hello from good\n');
  });

  test.each(['expired.test', 'future.test', 'selfsigned.test', 'wronghost.test', 'unknownca.test', 'nochain.test'])(
    'a bad origin certificate (%s) is refused with a 502 naming the reason; no request reaches it',
    async (name) => {
      const entry = bad.find((b) => b.name === name)!;
      const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${name}:${entry.origin!.port}/hello`]);
      expect(res.status).toBe(502);
      expect(res.body).not.toContain('hello from');
      expect(res.body).toMatch(entry.reason);
      expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_UPSTREAM_CERT');
      expect(entry.origin!.seen).toHaveLength(0);
      const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.host === name));
      const rec = records.find((x): x is RequestRecord => x.type === 'request' && x.host === name)!;
      expect(rec.status).toBe(502);
      expect(rec.error).toMatch(entry.reason);
    },
  );

  test('upstream_insecure on a rule skips verification for that rule only, with a warning on every use', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://insecure.test:${insecure.port}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from insecure\n');
    const warning = gw.logs().find((l) => l.level === 40 && String(l.msg).includes('NOT verified'));
    expect(warning).toMatchObject({ rule: 'lab-device' });
    // The same origin under the verifying rule is still refused.
    const strict = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://selfsigned.test:${insecure.port}/hello`]);
    expect(strict.status).toBe(502);
  });

  test('a Host naming another name than the tunnel is refused (domain fronting), even one also inspected', async () => {
    const before = good.seen.length;
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '-H', `Host: denied.test:${good.port}`, `https://origin.test:${good.port}/hello`]);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/domain fronting/);
    expect(good.seen.length).toBe(before);
    // Inspected too, but the origin connection is verified for origin.test: its rules govern.
    const fronted = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '-H', `Host: other.test:${good.port}`, `https://origin.test:${good.port}/hello`]);
    expect(fronted.status).toBe(403);
    expect(good.seen.length).toBe(before);
  });

  test('secrets in headers and configured query parameters never reach the audit file', async () => {
    const secrets = ['SECRET-AUTHZ-VALUE', 'SECRET-COOKIE-VALUE', 'SECRET-PROXY-AUTHZ', 'SECRET-QUERY-TOKEN', 'SECRET-SET-COOKIE-VALUE'];
    const res = await curl([
      '-x',
      gw.proxy,
      '--cacert',
      gw.caFile,
      '-H',
      'Authorization: Bearer SECRET-AUTHZ-VALUE',
      '-H',
      'Cookie: session=SECRET-COOKIE-VALUE',
      '-H',
      'Proxy-Authorization: Basic SECRET-PROXY-AUTHZ',
      `https://origin.test:${good.port}/cookie?token=SECRET-QUERY-TOKEN&page=2`,
    ]);
    expect(res.status).toBe(200);
    // The origin did get the end-to-end credentials; the proxy credential is hop-by-hop.
    const seen = good.seen[good.seen.length - 1]!;
    expect(seen.headers.authorization).toBe('Bearer SECRET-AUTHZ-VALUE');
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path.startsWith('/cookie')));
    const rec = records.find((x): x is RequestRecord => x.type === 'request' && x.path.startsWith('/cookie'))!;
    expect(rec.path).toBe('/cookie?token=[REDACTED]&page=2');
    expect(rec.request_headers.authorization).toBe('[REDACTED]');
    expect(rec.response_headers?.['set-cookie']).toEqual(['[REDACTED]', '[REDACTED]']);
    const file = readFileSync(gw.auditFile, 'utf8');
    const logs = JSON.stringify(gw.logs());
    for (const secret of secrets) {
      expect(file).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });

  test('keep-alive: several requests in one tunnel, each with its own audit record', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${good.port}/hello?n=1`, `https://origin.test:${good.port}/hello?n=2`]);
    // curl prints the -w status after each URL; count the bodies.
    expect(res.body.split('hello from good\n')).toHaveLength(3);
    expect(res.stderr).toBe('');
    const records = await eventually(gw.audit, (r) => r.filter((x) => x.type === 'request' && x.path.startsWith('/hello?n=')).length === 2);
    const both = records.filter((x): x is RequestRecord => x.type === 'request' && x.path.startsWith('/hello?n='));
    expect(both).toHaveLength(2);
    expect(both[0]!.flow_id).toBe(both[1]!.flow_id);
    expect(both.map((r) => r.request_id.split('-').pop())).toEqual(['1', '2']);
  });
});
