import type { RequestRecord } from '../../src/audit/record-fields';
import { AddressGuard } from '../../src/egress/address-guard';
import { OriginWarmup } from '../../src/egress/warmup';
import { Egress } from '../../src/egress/egress';
import { classifyOriginError } from '../../src/egress/errors';
import { H1Pools } from '../../src/egress/h1-pools';
import { H2Sessions } from '../../src/egress/h2-sessions';
import { createOriginContext } from '../../src/egress/origin-tls';
import { Resolver } from '../../src/egress/resolve';
import { GatewayError } from '../../src/errors/gateway-error';
import { normaliseHost } from '../../src/protocol/host';
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

  describe('every origin TLS path goes through the one verifying door', () => {
    let egress: Egress;
    let pools: H1Pools;
    let sessions: H2Sessions;

    beforeAll(() => {
      egress = new Egress({
        resolver: new Resolver({ hosts: { 'weakkey.test': '127.0.0.1', 'sha1.test': '127.0.0.1', 'good.test': '127.0.0.1' } }),
        guard: new AddressGuard(['127.0.0.0/8']),
        isOwnListener: () => false,
        connectTimeoutMs: 5_000,
        originContext: createOriginContext(caFile),
      });
      pools = new H1Pools(egress, { maxSocketsPerHost: 4, idleTimeoutMs: 5_000 });
      sessions = new H2Sessions(egress, { idleTimeoutMs: 5_000 });
    });

    afterAll(() => {
      pools.destroy();
      sessions.destroy();
    });

    const target = (name: string) => {
      const host = normaliseHost(name);
      if (!host.ok) throw new Error(`bad test name ${name}`);
      return { host: host.host, port: origin.port };
    };

    test('the door itself: a TLS connection to a weak origin is refused as a certificate failure', async () => {
      await expect(egress.connect(target('weakkey.test'), { tls: { servername: 'weakkey.test', verifyCertificate: true } })).rejects.toMatchObject({
        code: 'TG_ERR_UPSTREAM_CERT',
        message: expect.stringMatching(/weak key/),
      });
      const good = await egress.connect(target('good.test'), { tls: { servername: 'good.test', verifyCertificate: true } });
      good.socket.destroy();
    });

    test('the HTTP/1 pools', async () => {
      const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
        pools.dispatch(
          {
            target: target('weakkey.test'),
            tls: { servername: 'weakkey.test', verifyCertificate: true },
            method: 'GET',
            path: '/agent',
            headers: ['Host', 'weakkey.test'],
            body: null,
            bodyLengthStated: false,
            upgrade: null,
          },
          {
            onRequestStart: () => undefined,
            onResponseStart: () => reject(new Error('weak origin accepted')),
            onResponseError: (_controller, error) => resolve(error as NodeJS.ErrnoException),
          },
        );
      });
      expect(classifyOriginError(err, 'weakkey.test')).toMatchObject({ code: 'TG_ERR_UPSTREAM_CERT', message: expect.stringMatching(/weak key/) });
    });

    test('HTTP/2 origin sessions', async () => {
      const error = await sessions.session(target('sha1.test'), 'sha1.test').then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(GatewayError);
      expect(error).toMatchObject({ code: 'TG_ERR_UPSTREAM_CERT', message: expect.stringMatching(/weak signature/) });
    });

    test('the ALPN probe: h2 is never learned from a weak origin', async () => {
      const warmup = new OriginWarmup(egress, pools, sessions, { ttlMs: 60_000, maxEntries: 10 });
      const ask = (name: string) => warmup.prepare({ target: target(name), servername: name, verifyCertificate: true, clientOffersH2: true });
      expect(await ask('good.test')).toBe(true);
      expect(await ask('weakkey.test')).toBe(false);
      expect(origin.requests.get('weakkey.test') ?? 0).toBe(0);
    });
  });
});
