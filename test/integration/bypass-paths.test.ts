import { readFileSync } from 'node:fs';
import { startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { h2Request, h2Session } from './support/h2-client';
import { curl } from './support/run';

/**
 * Review item 4: spellings of /admin/secret that the origin resolves to it must not pass the
 * `no-admin` rule (deny /admin/**) by looking like something else, on plain HTTP, inside an
 * inspected tunnel over HTTP/1.1 and over HTTP/2. Each is refused, as a denial (403) or as an
 * ambiguous spelling (400), and none reaches the origin. curl's --path-as-is sends them as
 * written.
 */
const SPELLINGS: readonly [string, 400 | 403][] = [
  ['/admin', 403],
  ['/admin/secret', 403],
  ['/public/../admin/secret', 403],
  ['/public/%2e%2e/admin/secret', 403],
  ['/%61dmin/secret', 403],
  ['//admin/secret', 403],
  ['/./admin/secret', 403],
  ['/admin;x=1/secret', 403],
  // A parent step to Tomcat, a name to nginx: ambiguous, so refused (second review).
  ['/public/..;/admin/secret', 400],
  ['/admin/..;/public/readme', 400],
  ['/admin%2Fsecret', 400],
  ['/admin%5csecret', 400],
  ['/public/%c0%ae%c0%ae/admin/secret', 400],
  ['/admin%00/secret', 400],
];

describe('bypass: path spellings that dodge path rules', () => {
  let lab: LabOrigin;
  let gw: TestGateway;
  let ca: string;

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startLabGateway(lab);
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const reachedAdmin = (): string[] => lab.seen.map((s) => s.path).filter((p) => /admin/i.test(p));

  test.each(SPELLINGS)('plain HTTP: %s is refused with %i', async (path, status) => {
    const res = await curl(['-x', gw.proxy, '--path-as-is', `http://storage.test:${lab.httpPort}${path}`]);
    expect(res.status).toBe(status);
    expect(reachedAdmin()).toEqual([]);
  });

  test.each(SPELLINGS)('inspected HTTP/1.1: %s is refused with %i', async (path, status) => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '--http1.1', '--path-as-is', `https://storage.test:${lab.httpsPort}${path}`]);
    expect(res.status).toBe(status);
    expect(reachedAdmin()).toEqual([]);
  });

  test('inspected HTTP/2: every spelling is refused on its own stream, the connection stays usable', async () => {
    const { session, alpn } = await h2Session(gw.explicitPort, 'storage.test', lab.httpsPort, ca);
    try {
      expect(alpn).toBe('h2');
      for (const [path, status] of SPELLINGS) {
        const reply = await h2Request(session, path);
        expect([path, reply.status]).toEqual([path, status]);
      }
      expect((await h2Request(session, '/public/readme')).status).toBe(200);
    } finally {
      session.close();
    }
    expect(reachedAdmin()).toEqual([]);
  });

  test('the refusals say why, and name the canonical path for denials', async () => {
    const denied = (await gw.requestRecords('/public/../admin/secret')).pop();
    expect(denied).toMatchObject({ status: 403, http_rule: 'no-admin' });
    const ambiguous = (await gw.requestRecords('/admin%2Fsecret')).pop();
    expect(ambiguous?.status).toBe(400);
    expect(ambiguous?.error).toMatch(/encoded slash/);
  });

  test('paths the rules allow still pass as written (control)', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '--path-as-is', `https://storage.test:${lab.httpsPort}/public/./docs//readme%7e`]);
    expect(res.status).toBe(200);
    expect(lab.seen.at(-1)?.path).toBe('/public/./docs//readme%7e');
  });
});
