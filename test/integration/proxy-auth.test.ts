import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HttpProxyAgent } from 'http-proxy-agent';
import WebSocket from 'ws';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';
import { usersYaml } from './support/users';
import { startWsOrigin, type WsOrigin } from './support/ws-origins';

const ALICE_PASSWORD = 'alice-S3cret-pass';
const BOB_PASSWORD = 'bob-0ther-pass';

describe('proxy authentication (explicit proxy)', () => {
  let gw: TestGateway;
  let origin: Origin;
  let usersFile: string;
  const failed: { frontend: string; reason: string }[] = [];
  let unsubscribe: () => void;

  beforeAll(async () => {
    unsubscribe = subscribe('tollgate:auth:failed', (m) => failed.push(m));
    origin = await startHttpOrigin('plain');
    usersFile = path.join(tempDir('users'), 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: ALICE_PASSWORD, groups: ['eng'] }, bob: { password: BOB_PASSWORD, groups: ['sales'] } }));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [origin.port] },
      hostNames: ['eng-only.test'],
      policies: {
        'site.yaml': [
          'rules:',
          '  - match: origin.test',
          '    action: splice',
          '  - match: eng-only.test',
          '    action: splice',
          '    groups: [eng]',
          '  - match: eng-only.test',
          '    action: deny',
          '    reason: engineering only',
          '',
        ].join('\n'),
      },
      extraConfig: `auth:\n  users_file: ${usersFile}\n  realm: tollgate-test\n  max_failures: 8\n  failure_window: 1m\n`,
    });
  });

  afterAll(async () => {
    unsubscribe();
    await gw.stop();
    await origin.close();
  });

  const url = (host = 'origin.test', p = '/hello'): string => `http://${host}:${origin.port}${p}`;
  const alice = ['--proxy-user', `alice:${ALICE_PASSWORD}`];

  test('plain HTTP: 407 with a Basic challenge, then success with the right credentials', async () => {
    const none = await curl(['-x', gw.proxy, url()]);
    expect(none.status).toBe(407);
    expect(none.headers['proxy-authenticate']).toBe('Basic realm="tollgate-test", charset="UTF-8"');
    expect(none.headers['x-tollgate-reason']).toBe('TG_ERR_AUTH_REQUIRED');

    const wrong = await curl(['-x', gw.proxy, '--proxy-user', 'alice:not-her-password', url()]);
    expect(wrong.status).toBe(407);
    const unknown = await curl(['-x', gw.proxy, '--proxy-user', `mallory:${ALICE_PASSWORD}`, url()]);
    expect(unknown.status).toBe(407);

    const ok = await curl(['-x', gw.proxy, ...alice, url('origin.test', '/echo')]);
    expect(ok.status).toBe(200);
    // The credentials are for the proxy: the origin never sees them.
    const echoed = JSON.parse(ok.body) as { headers: Record<string, string> };
    expect(echoed.headers['proxy-authorization']).toBeUndefined();
    expect(origin.seen.some((r) => r.headers['proxy-authorization'] !== undefined)).toBe(false);
  });

  test('CONNECT: 407 with a Basic challenge, then a tunnel with the right credentials', async () => {
    const none = await curl(['-p', '-x', gw.proxy, url()]);
    expect(none.status).not.toBe(200);
    expect(none.stderr).toMatch(/407/);
    expect(none.headers['proxy-authenticate'] ?? '').toBe('Basic realm="tollgate-test", charset="UTF-8"');

    const wrong = await curl(['-p', '-x', gw.proxy, '--proxy-user', 'bob:not-his-password', url()]);
    expect(wrong.stderr).toMatch(/407/);
    const unknown = await curl(['-p', '-x', gw.proxy, '--proxy-user', 'nobody:whatever-it-is', url()]);
    expect(unknown.stderr).toMatch(/407/);

    const ok = await curl(['-p', '-x', gw.proxy, ...alice, url()]);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('hello from plain\n');
  });

  test('the challenge round trip as browsers do it (curl --proxy-anyauth: no credentials first, then Basic)', async () => {
    const plain = await curl(['-v', '-x', gw.proxy, '--proxy-anyauth', ...alice, url()]);
    expect(plain.status).toBe(200);
    expect(plain.stderr).toMatch(/< HTTP\/1\.1 407/);
    const tunnel = await curl(['-v', '-p', '-x', gw.proxy, '--proxy-anyauth', ...alice, url()]);
    expect(tunnel.status).toBe(200);
    expect(tunnel.stderr).toMatch(/< HTTP\/1\.1 407/);
    expect(tunnel.body).toBe('hello from plain\n');
  });

  test('a group-limited rule allows one user and denies another', async () => {
    const asAlice = await curl(['-x', gw.proxy, ...alice, url('eng-only.test')]);
    expect(asAlice.status).toBe(200);
    const asBob = await curl(['-x', gw.proxy, '--proxy-user', `bob:${BOB_PASSWORD}`, url('eng-only.test')]);
    expect(asBob.status).toBe(403);
    expect(asBob.body).toMatch(/engineering only/);
    const tunnelBob = await curl(['-p', '-x', gw.proxy, '--proxy-user', `bob:${BOB_PASSWORD}`, url('eng-only.test')]);
    expect(tunnelBob.stderr).toMatch(/403/);
    const tunnelAlice = await curl(['-p', '-x', gw.proxy, ...alice, url('eng-only.test')]);
    expect(tunnelAlice.status).toBe(200);
  });

  test('audit records carry the user; passwords and Proxy-Authorization values appear nowhere', async () => {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.frontend === 'explicit-connect' && x.user === 'alice'));
    const requests = records.filter((r): r is RequestRecord => r.type === 'request');
    const connections = records.filter((r): r is ConnectionRecord => r.type === 'connection');
    expect(requests.some((r) => r.user === 'alice' && r.status === 200 && r.host === 'origin.test')).toBe(true);
    expect(requests.some((r) => r.user === 'bob' && r.status === 403 && r.host === 'eng-only.test')).toBe(true);
    expect(connections.some((r) => r.frontend === 'explicit-connect' && r.user === 'alice' && r.action === 'splice')).toBe(true);
    expect(connections.some((r) => r.frontend === 'explicit-connect' && r.user === 'bob' && r.action === 'deny')).toBe(true);
    const refused = requests.find((r) => r.status === 407);
    expect(refused?.user).toBeNull();
    expect(refused?.error).toMatch(/^TG_ERR_AUTH_REQUIRED/);
    expect(refused === undefined ? null : refused.request_headers['proxy-authorization']).toBeUndefined();
    const withCredentials = requests.find((r) => r.user === 'alice');
    expect(withCredentials?.request_headers['proxy-authorization']).toBe('[REDACTED]');

    const everything = `${readFileSync(gw.auditFile, 'utf8')}\n${JSON.stringify(gw.logs())}`;
    for (const secret of [ALICE_PASSWORD, BOB_PASSWORD, 'not-her-password', 'not-his-password', 'whatever-it-is']) {
      expect(everything).not.toContain(secret);
    }
    for (const credentials of [`alice:${ALICE_PASSWORD}`, `bob:${BOB_PASSWORD}`, 'alice:not-her-password']) {
      expect(everything).not.toContain(Buffer.from(credentials).toString('base64'));
    }
    expect(gw.logs().some((l) => l.msg === 'proxy authentication failed' && l.user === 'alice' && l.reason === 'wrong-password')).toBe(true);
    expect(failed.some((f) => f.frontend === 'explicit-connect' && f.reason === 'unknown-user')).toBe(true);
  });

  test('repeated failures from one address are refused with 429 without checking; other addresses are not', async () => {
    const from = ['--interface', '127.0.0.2'];
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await curl([...from, '-x', gw.proxy, '--proxy-user', `alice:guess-${i}-wrong`, url()])).status);
    expect(statuses).toEqual(Array(8).fill(407));
    const locked = await curl([...from, '-x', gw.proxy, ...alice, url()]);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect(locked.headers['x-tollgate-reason']).toBe('TG_ERR_AUTH_THROTTLED');
    const lockedTunnel = await curl([...from, '-p', '-x', gw.proxy, ...alice, url()]);
    expect(lockedTunnel.stderr).toMatch(/429/);
    expect(failed.filter((f) => f.reason === 'throttled').length).toBeGreaterThanOrEqual(2);
    expect(gw.logs().some((l) => l.msg === 'too many failed authentications: this client address is refused until the window ends' && l.client === '127.0.0.2')).toBe(true);
    // 127.0.0.1 is unaffected.
    expect((await curl(['-x', gw.proxy, ...alice, url()])).status).toBe(200);
  });

  test('100 concurrent CONNECTs with wrong passwords from one address: max_failures checks (407), the rest 429 unchecked', async () => {
    const from = '127.0.0.4';
    /** The status code of the reply to one CONNECT sent from `from`; 0 if none came within the bound. */
    const statusOf = (password: string): Promise<number> =>
      new Promise((resolve) => {
        const credentials = Buffer.from(`alice:${password}`).toString('base64');
        const authority = `origin.test:${origin.port}`;
        const socket = net.connect({ port: gw.explicitPort, host: '127.0.0.1', localAddress: from }, () =>
          socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Basic ${credentials}\r\n\r\n`),
        );
        let reply = '';
        const done = (): void => {
          clearTimeout(timer);
          socket.destroy();
          resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0));
        };
        const timer = setTimeout(done, 15_000);
        socket.on('data', (chunk: Buffer) => {
          reply += chunk.toString('latin1');
          if (reply.includes('\r\n\r\n')) done();
        });
        socket.on('error', done);
        socket.on('close', done);
      });
    const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) => statusOf(`burst-${i}-wrong`)));
    const count = (status: number): number => statuses.filter((s) => s === status).length;
    expect({ 407: count(407), 429: count(429), other: statuses.length - count(407) - count(429) }).toEqual({ 407: 8, 429: 92, other: 0 });
    // One "failed" line per password check: no more checks ran than max_failures.
    expect(gw.logs().filter((l) => l.msg === 'proxy authentication failed' && l.client === from)).toHaveLength(8);
  });

  test('the users file reloads on change; an invalid file keeps the users in force', async () => {
    const carol = 'carol-N3w-password';
    writeFileSync(usersFile, await usersYaml({ alice: { password: ALICE_PASSWORD, groups: ['eng'] }, carol: { password: carol, groups: ['eng'] } }));
    const started = Date.now();
    await eventually(gw.logs, (logs) => logs.some((l) => l.msg === 'users file reloaded'), 5000);
    const reloadMs = Date.now() - started;
    expect(reloadMs).toBeLessThan(5000);
    expect((await curl(['-x', gw.proxy, '--proxy-user', `carol:${carol}`, url('eng-only.test')])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, '--proxy-user', `bob:${BOB_PASSWORD}`, url()])).status).toBe(407);

    writeFileSync(usersFile, 'users:\n  alice:\n    password: plaintext-oops\n');
    const status = gw.gateway.reload('SIGHUP');
    expect(status.ok).toBe(false);
    expect(status.problems.join('\n')).toMatch(/users\.yaml:3: users\.alice\.password: not a password hash/);
    expect(gw.logs().some((l) => l.msg === 'users file reload failed; the previous users stay in force')).toBe(true);
    expect((await curl(['-x', gw.proxy, '--proxy-user', `carol:${carol}`, url()])).status).toBe(200);
  });
});

describe('proxy authentication with inspection', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    const dir = tempDir('auth-inspect');
    const root = issue({ commonName: 'auth origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    origin = await startHttpsOrigin('tls-origin', { cert: leaf.certPem, key: leaf.keyPem });
    const usersFile = path.join(dir, 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: ALICE_PASSWORD, groups: ['eng'] } }));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: { 'inspect.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n    groups: [eng]\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  test('requests inside an inspected tunnel carry the user; credentials sent inside never reach the origin', async () => {
    const inner = `Basic ${Buffer.from(`alice:${ALICE_PASSWORD}`).toString('base64')}`;
    const res = await curl(['-x', gw.proxy, '--proxy-user', `alice:${ALICE_PASSWORD}`, '--cacert', gw.caFile, '-H', `Proxy-Authorization: ${inner}`, `https://origin.test:${origin.port}/echo`]);
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { headers: Record<string, string> }).headers['proxy-authorization']).toBeUndefined();
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.scheme === 'https'));
    const request = records.find((x): x is RequestRecord => x.type === 'request' && x.scheme === 'https');
    expect(request).toMatchObject({ user: 'alice', action: 'inspect', status: 200 });
    expect(JSON.stringify(records)).not.toContain(ALICE_PASSWORD);
    expect(JSON.stringify(records)).not.toContain(inner.slice(6));
    // Anonymous: no rule for everyone, so the default (deny) after the challenge.
    const anonymous = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${origin.port}/echo`]);
    expect(anonymous.stderr).toMatch(/407/);
  });
});

describe('proxy authentication for WebSocket upgrades', () => {
  let gw: TestGateway;
  let ws: WsOrigin;

  beforeAll(async () => {
    ws = await startWsOrigin();
    const usersFile = path.join(tempDir('auth-ws'), 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: ALICE_PASSWORD, groups: [] } }));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [ws.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
  });

  afterAll(async () => {
    await gw.stop();
    await ws.close();
  });

  /** The handshake's status: 101 when the upgrade went through, else the refusal's. */
  function handshake(agent: HttpProxyAgent<string>): Promise<number> {
    return new Promise((resolve) => {
      const client = new WebSocket(`ws://origin.test:${ws.port}/echo`, { agent, handshakeTimeout: 10_000 });
      client.once('open', () => {
        client.terminate();
        resolve(101);
      });
      client.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      client.once('error', () => resolve(0));
    });
  }

  test('an upgrade without credentials gets 407; with them it opens and the origin sees no credentials', async () => {
    expect(await handshake(new HttpProxyAgent(gw.proxy))).toBe(407);
    const withUser = new HttpProxyAgent(`http://alice:${encodeURIComponent(ALICE_PASSWORD)}@127.0.0.1:${gw.explicitPort}`);
    expect(await handshake(withUser)).toBe(101);
    expect(ws.handshakes.length).toBe(1);
    expect(ws.handshakes[0]!['proxy-authorization']).toBeUndefined();
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.status === 101));
    expect(records.some((x) => x.type === 'request' && x.status === 101 && x.user === 'alice')).toBe(true);
  });
});
