import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { rawExchange } from './support/raw-tcp';
import { usersYaml } from './support/users';

/**
 * Review item 9: with request 1 (alice) still in flight, request 2 on the same keep-alive
 * connection without credentials, or as bob, must not change request 1's audit `user`: each
 * request's record carries the identity that request authenticated with.
 */
describe('bypass: the user of each request on a shared connection', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('plain');
    const usersFile = path.join(tempDir('users'), 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: 'alice-pw', groups: [] }, bob: { password: 'bob-pw', groups: [] } }));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  const basic = (user: string, password: string): string => `Proxy-Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}\r\n`;

  test('pipelined: alice (slow), then no credentials, then bob: each record names its own user', async () => {
    const host = `origin.test:${origin.port}`;
    const request = (p: string, credentials: string, close = false): string => `GET http://${host}${p} HTTP/1.1\r\nHost: ${host}\r\n${credentials}${close ? 'Connection: close\r\n' : ''}\r\n`;
    const reply = await rawExchange(
      gw.explicitPort,
      request('/slow?ms=400&who=alice', basic('alice', 'alice-pw')) + request('/hello?who=anonymous', '') + request('/hello?who=bob', basic('bob', 'bob-pw'), true),
      5000,
    );
    expect([...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])).toEqual(['200', '407', '200']);
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path.includes('who=')),
      (r) => r.length === 3,
    );
    const userOf = (who: string): string | null | undefined => records.find((r) => r.path.endsWith(`who=${who}`))?.user;
    expect(userOf('alice')).toBe('alice');
    expect(userOf('anonymous')).toBeNull();
    expect(userOf('bob')).toBe('bob');
  });
});
