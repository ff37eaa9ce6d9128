import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildCli } from './support/build';
import { eventually } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { type RedisServer, startRedis } from './support/redis-server';
import { curl, run } from './support/run';
import { httpGet, type SpawnedGateway, spawnGateway } from './support/spawned-gateway';
import { usersYaml } from './support/users';

/**
 * Two gateway processes (replicas) sharing one real redis-server (`state.redis`): an attacker
 * who alternates between them gets no more password guesses than against one, and a Redis
 * outage makes authentication fail closed while the replicas stay up and say why.
 */

let MAIN = '';
const MAX_FAILURES = 4;
const ALICE = { password: 'alice-password-1', groups: [] };

function replicaDir(origin: Origin, redisUrl: string, prefix: string, users: string): string {
  const dir = tempDir('replica');
  mkdirSync(path.join(dir, 'p'));
  writeFileSync(path.join(dir, 'p/a.yaml'), 'rules:\n  - match: origin.test\n    action: splice\n');
  writeFileSync(path.join(dir, 'users.yaml'), users, { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'tollgate.yaml'),
    [
      'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      'policies: p',
      `allowed_ports:\n  http: [${origin.port}]`,
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      'audit:\n  file: audit.ndjson',
      'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
      'pinning:\n  state_file: null',
      `auth:\n  users_file: users.yaml\n  max_failures: ${MAX_FAILURES}\n  failure_window: 5m`,
      `state:\n  redis: ${redisUrl}\n  key_prefix: "${prefix}"\n  timeout: 500ms`,
    ].join('\n'),
  );
  return dir;
}

describe('a fleet of two replicas sharing state through Redis', () => {
  let redis: RedisServer;
  let origin: Origin;
  let a: SpawnedGateway;
  let b: SpawnedGateway;

  beforeAll(async () => {
    [MAIN, redis, origin] = await Promise.all([buildCli('fleet'), startRedis(), startHttpOrigin('fleet')]);
    const users = await usersYaml({ alice: ALICE });
    const prefix = `fleet-${randomBytes(4).toString('hex')}:`;
    [a, b] = await Promise.all([spawnGateway(MAIN, replicaDir(origin, redis.url, prefix, users)), spawnGateway(MAIN, replicaDir(origin, redis.url, prefix, users))]);
  }, 100_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    await origin?.close();
  });

  const attempt = async (replica: SpawnedGateway, from: string, credentials: string): Promise<number> =>
    (await curl(['--interface', from, '-x', `http://127.0.0.1:${replica.ports.explicit}`, '--proxy-user', credentials, `http://origin.test:${origin.port}/hello`])).status;

  test('an attacker alternating between the replicas is throttled after the same number of failures as against one', async () => {
    const alternating: number[] = [];
    for (let i = 0; i < MAX_FAILURES + 2; i++) alternating.push(await attempt(i % 2 === 0 ? a : b, '127.0.0.2', `alice:guess-${i}`));
    const againstOne: number[] = [];
    for (let i = 0; i < MAX_FAILURES + 2; i++) againstOne.push(await attempt(a, '127.0.0.3', `alice:guess-${i}`));
    const expected = [...Array<number>(MAX_FAILURES).fill(407), 429, 429];
    expect(alternating).toEqual(expected);
    expect(againstOne).toEqual(expected);
    // Locked on every replica, even with the right password; another address is unaffected.
    expect(await attempt(a, '127.0.0.2', `alice:${ALICE.password}`)).toBe(429);
    expect(await attempt(b, '127.0.0.2', `alice:${ALICE.password}`)).toBe(429);
    expect(await attempt(b, '127.0.0.4', `alice:${ALICE.password}`)).toBe(200);
    const metrics = (await httpGet(b.ports.admin!, '/metrics')).body;
    expect(metrics).toMatch(/^tollgate_state_store_up 1$/m);
    expect(metrics).not.toMatch(/tollgate_audit_syslog_connected/);
  });

  test('tollgate status compares the replicas: version, policy, uptime, open flows, listeners', async () => {
    const admins = [a, b].map((r) => `http://127.0.0.1:${r.ports.admin}`);
    const result = await run(process.execPath, [MAIN, 'status', '--admin', admins.join(',')]);
    const out = result.stdout.toString();
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const policy = /policy_version":"([^"]+)"/.exec(a.output())![1]!;
    for (const [i, replica] of [a, b].entries()) {
      expect(out).toContain(`${admins[i]}/\n  version        `);
      expect(out).toContain(`  listeners      explicit 127.0.0.1:${replica.ports.explicit}, admin 127.0.0.1:${replica.ports.admin}\n`);
    }
    expect(out).toMatch(/^ {2}open flows {5}\d+$/m);
    expect(out).toMatch(/^ {2}uptime {9}[0-9dhms ]+ \(since \S+\)$/m);
    expect(out).toMatch(new RegExp(`^2 of 2 replicas answered: version \\S+ everywhere; policy ${policy} everywhere$`, 'm'));

    const partly = await run(process.execPath, [MAIN, 'status', '--admin', `${admins[0]},http://127.0.0.1:9`]);
    expect(partly.code).toBe(1);
    expect(partly.stdout.toString()).toMatch(/^http:\/\/127\.0\.0\.1:9\/\n {2}unreachable {4}ECONNREFUSED$/m);
    expect(partly.stdout.toString()).toMatch(/1 of 2 unreachable$/m);
  });

  test('Redis down: authentication fails closed (503), the replicas stay ready and say why; back up: it works again', async () => {
    await redis.stop();
    const down = await eventually(
      () => attempt(a, '127.0.0.5', `alice:${ALICE.password}`),
      (status) => status === 503,
      10_000,
    );
    expect(down).toBe(503);
    expect(await attempt(b, '127.0.0.5', `alice:${ALICE.password}`)).toBe(503);
    const readyz = await httpGet(a.ports.admin!, '/readyz');
    expect(readyz.status).toBe(200);
    expect(readyz.body).toMatch(/^warning: state store \(state\.redis\) unreachable since \S+: proxy authentication refuses to check credentials \(fail closed\); pinning detection is report-only$/m);
    const metrics = (await httpGet(a.ports.admin!, '/metrics')).body;
    expect(metrics).toMatch(/^tollgate_state_store_up 0$/m);
    expect(metrics).toMatch(/^tollgate_state_store_failed_commands_total [1-9]/m);
    expect(a.output()).toMatch(/"msg":"state store unreachable: proxy authentication refuses to check credentials \(fail closed\)/);
    expect(a.output()).not.toContain(ALICE.password);

    await redis.start();
    const back = await eventually(
      () => attempt(a, '127.0.0.5', `alice:${ALICE.password}`),
      (status) => status === 200,
      15_000,
    );
    expect(back).toBe(200);
    expect((await httpGet(a.ports.admin!, '/readyz')).body).toBe('ready\n');
  });
});
