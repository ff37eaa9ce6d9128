import type { RequestRecord } from '../../src/audit/record-fields';
import { echoed, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import { startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './support/pki';
import { usersYaml } from './support/users';

/**
 * Review item 3 (the second half): a stored response's Vary is matched against the header
 * values sent to the origin, after the HTTP rules edited them, not against what the client
 * wrote; and responses fetched under different policy rules are kept apart. (Cross-name
 * poisoning is in bypass-names.test.ts.)
 */
const POLICY = `rules:
  - name: tenants
    match: victim.test
    action: inspect
    http:
      - name: admins-see-admin
        request: { headers: { X-Role: admin } }
        action: set_header
        set_headers: { request: { X-Tenant: admin } }
  - name: group-a
    match: other.test
    action: inspect
    groups: [a]
    http:
      - name: tenant-a
        action: set_header
        set_headers: { request: { X-Tenant: a } }
  - name: group-b
    match: other.test
    action: inspect
    groups: [b]
    http:
      - name: tenant-b
        action: set_header
        set_headers: { request: { X-Tenant: b } }
`;

describe('bypass: cache keys and Vary after header edits', () => {
  let lab: LabOrigin;
  let gw: TestGateway;

  beforeAll(async () => {
    lab = await startLabOrigin();
    const usersFile = path.join(tempDir('users'), 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: 'pw-a', groups: ['a'] }, bob: { password: 'pw-b', groups: ['b'] } }));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [lab.httpsPort], http: [lab.httpPort] },
      hostNames: ['victim.test'],
      upstreamCaFile: lab.caFile,
      policies: { 'lab.yaml': POLICY },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const get = (url: string, ...args: string[]) => curl(['-x', gw.proxy, '--cacert', gw.caFile, ...(args.includes('--proxy-user') ? [] : ['--proxy-user', 'alice:pw-a']), ...args, url]);

  test('Vary is matched on the value the origin was sent, not the one the client wrote', async () => {
    const url = `https://victim.test:${lab.httpsPort}/tenant-page?cc=public,max-age=600&vary=X-Tenant`;
    // An admin's request: the client wrote X-Tenant: guest, the rule sent X-Tenant: admin.
    const admin = await get(url, '-H', 'X-Role: admin', '-H', 'X-Tenant: guest');
    expect(echoed(admin.body)?.tenant).toBe('admin');
    // A guest writing the same X-Tenant is sent guest: the admin's response must not answer it.
    const guest = await get(url, '-H', 'X-Tenant: guest');
    expect(guest.status).toBe(200);
    expect(echoed(guest.body)?.tenant).toBe('guest');
    // Another admin is sent what the first was: that one is a hit.
    const admin2 = await get(url, '-H', 'X-Role: admin', '-H', 'X-Tenant: someone-else');
    expect(echoed(admin2.body)?.tenant).toBe('admin');
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === new URL(url).pathname + new URL(url).search);
    expect(records.map((r) => r.cache)).toEqual(['miss', 'miss', 'hit']);
  });

  test("a response fetched with a user's Cookie is not kept for others unless the origin says it is for everyone", async () => {
    const personal = `https://victim.test:${lab.httpsPort}/account?cc=max-age%3D600`;
    const alice = await get(personal, '-H', 'Cookie: session=ALICE');
    expect(alice.status).toBe(200);
    const anonymous = await get(personal);
    expect(anonymous.status).toBe(200);
    expect(lab.requestsFor('/account').map((r) => r.headers.cookie ?? null)).toEqual(['session=ALICE', null]);
    // public: the origin says the page is the same for everyone, cookie or not.
    const shared = `https://victim.test:${lab.httpsPort}/news?cc=public,max-age%3D600`;
    await get(shared, '-H', 'Cookie: session=ALICE');
    const second = await get(shared);
    expect(second.status).toBe(200);
    expect(lab.requestsFor('/news')).toHaveLength(1);
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && (r.path.startsWith('/account') || r.path.startsWith('/news')));
    expect(records.map((r) => [r.path.split('?')[0], r.cache])).toEqual([
      ['/account', 'miss'],
      ['/account', 'miss'],
      ['/news', 'miss'],
      ['/news', 'hit'],
    ]);
  });

  test("one group rule's response is not served under another group's rule, even without Vary", async () => {
    const url = `https://other.test:${lab.httpsPort}/group-page?cc=public,max-age=600`;
    const a = await get(url, '--proxy-user', 'alice:pw-a');
    expect(a.status).toBe(200);
    expect(echoed(a.body)?.tenant).toBe('a');
    const b = await get(url, '--proxy-user', 'bob:pw-b');
    expect(b.status).toBe(200);
    expect(echoed(b.body)?.tenant).toBe('b');
    const a2 = await get(url, '--proxy-user', 'alice:pw-a');
    expect(echoed(a2.body)?.tenant).toBe('a');
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === '/group-page?cc=public,max-age=600');
    expect(records.map((r) => [r.user, r.rule, r.cache])).toEqual([
      ['alice', 'group-a', 'miss'],
      ['bob', 'group-b', 'miss'],
      ['alice', 'group-a', 'hit'],
    ]);
  });
});
