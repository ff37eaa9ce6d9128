import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionRecord, PinningRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { fingerprint256, issue, tempDir, writePem } from './support/pki';
import { curl, run } from './support/run';

describe('live policy reload', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('plain');
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: deny\n    reason: not yet\n' },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (): string => `http://origin.test:${origin.port}/hello`;

  test('a file change flips a decision without a restart; a broken file keeps the old policy', async () => {
    expect((await curl(['-x', gw.proxy, url()])).status).toBe(403);
    const before = gw.gateway.policy.version;
    writeFileSync(path.join(gw.dir, 'policies/site.yaml'), 'rules:\n  - match: origin.test\n    action: splice\n');
    await eventually(
      () => gw.gateway.policy.version,
      (v) => v !== before,
    );
    expect((await curl(['-x', gw.proxy, url()])).status).toBe(200);
    const good = gw.gateway.policy.version;

    writeFileSync(path.join(gw.dir, 'policies/site.yaml'), 'rules:\n  - match: origin.test\n    action: allow-everything\n');
    const failed = await eventually(
      () => gw.gateway.lastReload,
      (s) => !s.ok,
    );
    expect(failed.ok).toBe(false);
    expect(failed.problems.join('\n')).toMatch(/site\.yaml:3: rules\[0\]\.action: expected one of: deny, splice, inspect/);
    expect(gw.gateway.policy.version).toBe(good);
    expect((await curl(['-x', gw.proxy, url()])).status).toBe(200);
    const logged = gw.logs().find((l) => l.msg === 'policy reload failed; the previous policy stays in force');
    expect(logged?.policy_version).toBe(good);
  });

  test('SIGHUP-style reload; each record carries the policy version it was decided under', async () => {
    writeFileSync(path.join(gw.dir, 'policies/site.yaml'), 'rules:\n  - match: origin.test\n    action: deny\n');
    const status = gw.gateway.reload('SIGHUP');
    expect(status.ok).toBe(true);
    const res = await curl(['-x', gw.proxy, url()]);
    expect(res.status).toBe(403);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.policy_version === status.version));
    expect(records.some((x) => x.type === 'request' && x.policy_version === status.version && x.status === 403)).toBe(true);
  });

  test('a broken configuration file fails the reload and keeps the policy', async () => {
    const version = gw.gateway.policy.version;
    const configFile = path.join(gw.dir, 'tollgate.yaml');
    const original = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, `${original}\ndefault_action: maybe\n`);
    const status = gw.gateway.reload('SIGHUP');
    expect(status.ok).toBe(false);
    expect(status.problems.join('\n')).toMatch(/tollgate\.yaml:\d+: /);
    expect(gw.gateway.policy.version).toBe(version);
    writeFileSync(configFile, original);
  });
});

describe('certificate pinning detection', () => {
  let gw: TestGateway;
  let origin: Origin;
  let originCa: string;
  let originCert: string;

  beforeAll(async () => {
    const dir = tempDir('pinning');
    const ca = issue({ commonName: 'pinning origin CA', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'other.test', 'denied.test'], issuer: ca });
    originCa = writePem(dir, 'ca.pem', ca.certPem);
    originCert = leaf.certPem;
    origin = await startHttpsOrigin('pinned', { cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      upstreamCaFile: originCa,
      policies: {
        'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n  - match: other.test\n    action: inspect\n  - match: denied.test\n    action: inspect\n    required: true\n',
      },
      extraConfig: 'pinning:\n  mode: auto_splice\n  min_clients: 3\n  splice_for: 1h\n',
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  /** A client that does not trust the gateway CA, like a pinning app, from a given source address. */
  const reject = (name: string, from: string) => curl(['--interface', from, '-x', gw.proxy, '--cacert', originCa, `https://${name}:${origin.port}/hello`]);

  const servedCertificate = async (name: string): Promise<string> => {
    const s = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${gw.explicitPort}`, '-connect', `${name}:${origin.port}`, '-servername', name], { input: 'Q\n', timeoutMs: 10_000 });
    return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(s.stdout.toString())![0];
  };

  test('failures from one address never switch a name', async () => {
    for (let i = 0; i < 4; i++) expect((await reject('other.test', '127.0.0.5')).exitCode).not.toBe(0);
    expect(fingerprint256(await servedCertificate('other.test'))).not.toBe(fingerprint256(originCert));
    expect(gw.gateway.pinning.isSpliced('other.test')).toBe(false);
  });

  test('rejections from three client addresses switch the name to splice, with an audit record', async () => {
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const res = await reject('origin.test', from);
      expect(res.exitCode).not.toBe(0);
    }
    await eventually(
      () => gw.gateway.pinning.isSpliced('origin.test'),
      (v) => v,
    );
    const res = await curl(['-x', gw.proxy, '--cacert', originCa, `https://origin.test:${origin.port}/hello`]);
    expect(res.status).toBe(200);
    expect(fingerprint256(await servedCertificate('origin.test'))).toBe(fingerprint256(originCert));
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'pinning'));
    const pinned = records.find((x): x is PinningRecord => x.type === 'pinning')!;
    expect(pinned).toMatchObject({ name: 'origin.test', action: 'auto-splice', distinct_clients: 3 });
    const spliced = records.filter((x): x is ConnectionRecord => x.type === 'connection' && x.decision_code === 'pinning');
    expect(spliced.length).toBeGreaterThan(0);
    expect(spliced[0]!.action).toBe('splice');
  });

  test('a rule marked required is never switched', async () => {
    for (const from of ['127.0.0.6', '127.0.0.7', '127.0.0.8']) expect((await reject('denied.test', from)).exitCode).not.toBe(0);
    expect(gw.gateway.pinning.report().find((n) => n.name === 'denied.test')?.clients).toBe(3);
    expect(gw.gateway.pinning.isSpliced('denied.test')).toBe(false);
    expect(fingerprint256(await servedCertificate('denied.test'))).not.toBe(fingerprint256(originCert));
  });
});
