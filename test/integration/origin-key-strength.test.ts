import https from 'node:https';
import type { RequestRecord } from '../../src/audit/fields';
import { AddressGuard } from '../../src/egress/address-guard';
import type { Egress } from '../../src/egress/dial';
import { Resolver } from '../../src/egress/resolve';
import { GatewayError } from '../../src/errors/gateway-error';
import { H2OriginPool } from '../../src/http/h2-origin';
import { normaliseHost } from '../../src/protocol/host';
import { classifyOriginError, createOriginAgents, type OriginAgents } from '../../src/tls/origin';
import { OriginAlpnCache } from '../../src/tls/origin-alpn';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { tempDir, writePem } from './support/pki';
import { run, curl } from './support/run';
import { issueWithStrength, startSniOrigin, type SniOrigin } from './support/weak-certs';

/**
 * Origin certificates that are cryptographically weak: an RSA-1024 leaf, a leaf issued by an
 * RSA-1024 CA, a SHA-1-signed leaf. curl, Python, Squid and mitmproxy refuse them (OpenSSL
 * security level 2); the gateway must too, on every origin TLS path, and say why.
 */
const WEAK: readonly { name: string; reason: RegExp }[] = [
  { name: 'weakkey.test', reason: /weak key/ },
  { name: 'weakca.test', reason: /weak key/ },
  { name: 'sha1.test', reason: /weak signature/ },
];

describe('origin key strength (OpenSSL security level 2)', () => {
  let gw: TestGateway;
  let origin: SniOrigin;
  let caFile: string;

  beforeAll(async () => {
    const dir = tempDir('keystrength');
    const root = issueWithStrength({ commonName: 'strength root', isCa: true });
    const weakRoot = issueWithStrength({ commonName: 'weak 1024-bit root', isCa: true, keyBits: 1024 });
    caFile = writePem(dir, 'roots.pem', root.certPem + weakRoot.certPem);
    const pair = (c: { certPem: string; keyPem: string }) => ({ cert: c.certPem, key: c.keyPem });
    origin = await startSniOrigin(
      {
        'good.test': pair(issueWithStrength({ commonName: 'good.test', issuer: root })),
        'weakkey.test': pair(issueWithStrength({ commonName: 'weakkey.test', dnsNames: ['weakkey.test', 'lab.test'], issuer: root, keyBits: 1024 })),
        'lab.test': pair(issueWithStrength({ commonName: 'lab.test', issuer: root, keyBits: 1024 })),
        'weakca.test': pair(issueWithStrength({ commonName: 'weakca.test', issuer: weakRoot })),
        'sha1.test': pair(issueWithStrength({ commonName: 'sha1.test', issuer: root, md: 'sha1' })),
      },
      'good.test',
    );
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      hostNames: ['good.test', 'weakkey.test', 'weakca.test', 'sha1.test', 'lab.test'],
      upstreamCaFile: caFile,
      policies: {
        'p.yaml': 'rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n  - name: lab-device\n    match: lab.test\n    action: inspect\n    upstream_insecure: true\n',
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (name: string, path = '/hello'): string => `https://${name}:${origin.port}${path}`;

  test('a strong origin certificate is accepted (the fixtures themselves are sound)', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, url('good.test')]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from good.test\n');
  });

  test.each(WEAK)('$name is refused with a 502 naming the reason, in the page, the header and the audit record; no request reaches it', async ({ name, reason }) => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, url(name, '/h1')]);
    expect(res.status).toBe(502);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_UPSTREAM_CERT');
    expect(res.body).toMatch(reason);
    expect(res.body).not.toContain('hello from');
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.host === name && x.path === '/h1'));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.host === name && x.path === '/h1');
    expect(record?.status).toBe(502);
    expect(record?.error).toMatch(reason);
    expect(record?.error).toMatch(/TG_ERR_UPSTREAM_CERT|failed verification/);
    expect(origin.requests.get(name) ?? 0).toBe(0);
  });

  test.each(WEAK)('$name is refused for an HTTP/2 client as well (curl --http2)', async ({ name, reason }) => {
    const res = await run('curl', ['-sS', '--http2', '--max-time', '15', '-x', gw.proxy, '--cacert', gw.caFile, '-w', '\n%{http_code}', url(name, '/h2')], { timeoutMs: 20_000 });
    const out = res.stdout.toString();
    expect(out.endsWith('\n502')).toBe(true);
    expect(out).toMatch(reason);
    expect(origin.requests.get(name) ?? 0).toBe(0);
  });

  test('upstream_insecure still skips verification for its rule, key strength included (with the warning)', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, url('lab.test')]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from lab.test\n');
    expect(gw.logs().some((l) => l.level === 40 && String(l.msg).includes('NOT verified') && l.rule === 'lab-device')).toBe(true);
  });

  describe('every origin TLS path built on the verifying context', () => {
    let agents: OriginAgents;
    let egress: Egress;

    beforeAll(() => {
      agents = createOriginAgents({ caFile, maxSocketsPerHost: 4, idleTimeoutMs: 5_000 });
      egress = { resolver: new Resolver({ hosts: { 'weakkey.test': '127.0.0.1', 'sha1.test': '127.0.0.1', 'good.test': '127.0.0.1' } }), guard: new AddressGuard(['127.0.0.0/8']), isOwnListener: () => false, connectTimeoutMs: 5_000 };
    });

    afterAll(() => {
      agents.verified.destroy();
      agents.insecure.destroy();
    });

    const target = (name: string) => {
      const host = normaliseHost(name);
      if (!host.ok) throw new Error(`bad test name ${name}`);
      return { host: host.host, port: origin.port };
    };

    test('the HTTPS agent', async () => {
      const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port: origin.port, servername: 'weakkey.test', path: '/agent', agent: agents.verified }, () => reject(new Error('weak origin accepted')));
        req.on('error', resolve);
      });
      expect(classifyOriginError(err, 'weakkey.test')).toMatchObject({ code: 'TG_ERR_UPSTREAM_CERT', message: expect.stringMatching(/weak key/) });
    });

    test('HTTP/2 origin sessions', async () => {
      const pool = new H2OriginPool({ egress, secureContext: agents.secureContext, idleTimeoutMs: 5_000 });
      try {
        const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
          const session = pool.session(target('sha1.test'), 'sha1.test');
          session.once('error', resolve);
          const stream = session.request({ ':path': '/h2-session' });
          stream.on('error', () => undefined);
          stream.once('response', () => reject(new Error('weak origin accepted')));
          setTimeout(() => reject(new Error('no error within 10 s')), 10_000).unref();
        });
        const error = classifyOriginError(err, 'sha1.test');
        expect(error).toBeInstanceOf(GatewayError);
        expect(error).toMatchObject({ code: 'TG_ERR_UPSTREAM_CERT', message: expect.stringMatching(/weak signature/) });
      } finally {
        pool.destroy();
      }
    });

    test('the ALPN probe: h2 is never learned from a weak origin', async () => {
      const probe = new OriginAlpnCache({ egress, secureContext: agents.secureContext, connectTimeoutMs: 5_000, ttlMs: 60_000, maxEntries: 10 });
      expect(await probe.speaksH2(target('good.test'), 'good.test')).toBe(true);
      expect(await probe.speaksH2(target('weakkey.test'), 'weakkey.test')).toBe(false);
      expect(origin.requests.get('weakkey.test') ?? 0).toBe(0);
    });
  });
});
