import { lstatSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config/load-config';
import { Gateway } from '../../src/gateway';
import { watchForChanges } from '../../src/policy/watch';
import { eventually } from './support/gateway';
import { KubeletVolume } from './support/kubelet-volume';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { curl } from './support/run';
import { usersYaml } from './support/users';

/**
 * Live reload from Kubernetes volumes: the policy directory, the configuration file and the
 * users file each come from a ConfigMap or Secret volume that the kubelet updates by swapping
 * its `..data` symlink (support/kubelet-volume.ts does exactly that), never by writing the
 * files the gateway opens.
 */

function captureLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('the watcher sees a kubelet volume update', () => {
  test('a ..data swap is reported once, though no watched file name was written', async () => {
    const dir = tempDir('kubelet-watch');
    const volume = new KubeletVolume(dir);
    volume.publish({ 'site.yaml': 'rules: []\n' });
    const changes: string[] = [];
    const { logger } = captureLogger();
    const stop = watchForChanges([{ dir, names: new Set(['site.yaml']) }], (changed) => changes.push(changed), logger, 50);
    try {
      volume.publish({ 'site.yaml': 'rules: []\n# v2\n' });
      await eventually(
        () => changes.length,
        (n) => n > 0,
      );
      expect(changes).toEqual([`${dir} (volume update)`]);
    } finally {
      stop();
    }
  });
});

describe('policy, configuration and users reload from ConfigMap and Secret volumes', () => {
  let origin: Origin;
  let gateway: Gateway;
  let proxy = '';
  let root = '';
  let logs: () => Record<string, unknown>[];
  const config = (defaultAction: string, port: number): string =>
    [
      'listen:\n  explicit: 127.0.0.1:0',
      'policies: ../policies',
      `default_action: ${defaultAction}`,
      `allowed_ports:\n  http: [${port}]`,
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n    other.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      'audit:\n  file: ../audit.ndjson',
      'ca:\n  cert: ../ca/ca.pem\n  key: ../ca/ca.key',
      'auth:\n  users_file: ../users/users.yaml\n  max_failures: 100',
      'pinning:\n  state_file: null',
      '',
    ].join('\n');
  let policies: KubeletVolume;
  let configVolume: KubeletVolume;
  let users: KubeletVolume;
  const alice = { password: 'alice-password-1', groups: [] };
  const bob = { password: 'bob-password-22', groups: [] };

  const status = async (url: string, user = `alice:${alice.password}`): Promise<number> => (await curl(['-x', proxy, '--proxy-user', user, url])).status;
  const hello = (): string => `http://origin.test:${origin.port}/hello`;

  beforeAll(async () => {
    origin = await startHttpOrigin('configmap');
    root = tempDir('configmap');
    configVolume = new KubeletVolume(path.join(root, 'config'));
    configVolume.publish({ 'tollgate.yaml': config('deny', origin.port) });
    policies = new KubeletVolume(path.join(root, 'policies'));
    policies.publish({ 'site.yaml': 'rules:\n  - match: origin.test\n    action: deny\n' });
    // Secret volumes: defaultMode 0400, as the shipped manifests mount them.
    users = new KubeletVolume(path.join(root, 'users'), 0o400);
    users.publish({ 'users.yaml': await usersYaml({ alice }) });
    const captured = captureLogger();
    logs = captured.lines;
    gateway = await Gateway.start(loadConfig(path.join(root, 'config/tollgate.yaml')), { logger: captured.logger });
    proxy = `http://127.0.0.1:${gateway.address('explicit')!.port}`;
  });

  afterAll(async () => {
    await gateway.stop(500);
    await origin.close();
  });

  test('a policy ConfigMap update applies without a restart', async () => {
    expect(await status(hello())).toBe(403);
    const before = gateway.policy.version;
    policies.publish({ 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' });
    await eventually(
      () => gateway.policy.version,
      (v) => v !== before,
    );
    expect(gateway.lastReload).toMatchObject({ ok: true, trigger: `file change: ${path.join(root, 'policies')} (volume update)` });
    expect(await status(hello())).toBe(200);
  });

  test('a broken policy update keeps the last good policy; the next good one applies', async () => {
    const good = gateway.policy.version;
    policies.publish({ 'site.yaml': 'rules:\n  - match: origin.test\n    action: allow-everything\n' });
    const failed = await eventually(
      () => gateway.lastReload,
      (s) => !s.ok,
    );
    expect(failed.ok).toBe(false);
    expect(failed.problems.join('\n')).toMatch(/site\.yaml:3: rules\[0\]\.action/);
    expect(gateway.policy.version).toBe(good);
    expect(await status(hello())).toBe(200);
    expect(logs().some((l) => l.msg === 'policy reload failed; the previous policy stays in force')).toBe(true);

    // A file added and one removed in the same update, as `kubectl apply` of a ConfigMap does.
    policies.publish({ 'other.yaml': 'rules:\n  - match: other.test\n    action: splice\n  - match: origin.test\n    action: deny\n' });
    await eventually(
      () => gateway.lastReload,
      (s) => s.ok && gateway.policy.version !== good,
    );
    expect(await status(hello())).toBe(403);
    expect(await status(`http://other.test:${origin.port}/hello`)).toBe(200);
  });

  test('a configuration ConfigMap update applies what shapes decisions', async () => {
    const before = gateway.policy.version;
    configVolume.publish({ 'tollgate.yaml': config('deny', origin.port + 1) });
    await eventually(
      () => gateway.policy.version,
      (v) => v !== before,
    );
    expect([...gateway.policy.allowedPorts.http]).toEqual([origin.port + 1]);
    // The origin's port is no longer allowed: refused before any rule is consulted.
    expect(await status(`http://other.test:${origin.port}/hello`)).toBe(403);
    configVolume.publish({ 'tollgate.yaml': config('deny', origin.port) });
    await eventually(
      () => [...gateway.policy.allowedPorts.http],
      (p) => p[0] === origin.port,
    );
    expect([...gateway.policy.allowedPorts.http]).toEqual([origin.port]);
  });

  test('a users Secret update applies: a new user can authenticate, a broken file keeps the users', async () => {
    const other = `http://other.test:${origin.port}/hello`;
    expect(await status(other, `bob:${bob.password}`)).toBe(407);
    users.publish({ 'users.yaml': await usersYaml({ alice, bob }) });
    expect(
      await eventually(
        () => status(other, `bob:${bob.password}`),
        (s) => s === 200,
      ),
    ).toBe(200);
    users.publish({ 'users.yaml': 'users:\n  bob: [not, a, user]\n' });
    await eventually(
      () => logs().some((l) => l.msg === 'users file reload failed; the previous users stay in force'),
      (seen) => seen,
    );
    expect(await status(other, `bob:${bob.password}`)).toBe(200);
  });

  test('the visible files were never written in place (the premise of this suite)', () => {
    for (const file of ['config/tollgate.yaml', 'policies/other.yaml', 'users/users.yaml']) expect(lstatSync(path.join(root, file)).isSymbolicLink()).toBe(true);
  });
});
