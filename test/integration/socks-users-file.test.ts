import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { hashPassword } from '../../src/identity/password-hash';
import { eventually, type SocksTestGateway, startSocksTestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { curl } from './support/run';

/** The users file of proxy authentication also serves SOCKS5 username/password (RFC 1929). */
describe('SOCKS5 username/password against the users file', () => {
  const ALICE = 'alice-Socks-pass';
  const BOB = 'bob-Socks-pass';
  let gw: SocksTestGateway;
  let origin: Origin;
  let socks: string;

  beforeAll(async () => {
    origin = await startHttpOrigin('socks-origin');
    const usersFile = path.join(tempDir('socks-users'), 'users.yaml');
    const hash = (p: string): Promise<string> => hashPassword(p, { ln: 12, r: 8, p: 1 });
    writeFileSync(usersFile, `users:\n  alice:\n    password: "${await hash(ALICE)}"\n    groups: [eng]\n  bob:\n    password: "${await hash(BOB)}"\n    groups: [sales]\n`, { mode: 0o600 });
    gw = await startSocksTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n    groups: [eng]\n  - match: origin.test\n    action: deny\n    reason: engineering only\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
    socks = gw.socks;
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (): string => `http://origin.test:${origin.port}/hello`;

  test('curl --socks5 --proxy-user: right credentials pass, wrong and missing ones are refused, groups apply', async () => {
    const ok = await curl(['--socks5-hostname', socks, '--proxy-user', `alice:${ALICE}`, url()]);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('hello from socks-origin\n');

    const wrong = await curl(['--socks5-hostname', socks, '--proxy-user', 'alice:not-her-password', url()]);
    expect(wrong.status).toBe(0);
    expect(wrong.stderr).toMatch(/rejected|authentication/i);
    const none = await curl(['--socks5-hostname', socks, url()]);
    expect(none.status).toBe(0);
    const bob = await curl(['--socks5-hostname', socks, '--proxy-user', `bob:${BOB}`, url()]);
    expect(bob.status).toBe(0);

    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.frontend === 'socks'),
      (list) => list.some((r) => r.user === 'bob'),
    );
    expect(records.some((r) => r.user === 'alice' && r.action === 'splice')).toBe(true);
    expect(records.some((r) => r.user === 'bob' && r.action === 'deny')).toBe(true);
    const everything = JSON.stringify(records) + JSON.stringify(gw.logs());
    expect(everything).not.toContain(ALICE);
    expect(everything).not.toContain('not-her-password');
  });
});
