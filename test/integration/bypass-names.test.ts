import { readFileSync } from 'node:fs';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { AWS_KEY, echoed, startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { h2Request, h2Session } from './support/h2-client';
import { curl } from './support/run';
import { statuses, tlsRawExchange } from './support/tls-raw';

/**
 * Review items 2 and 3: one name governs an inspected request end to end, the name the origin
 * connection is verified for; every other name the client presents (CONNECT target, SNI, Host,
 * :authority) must agree with it, or the request is refused before any rule could be chosen by
 * the wrong name. And the cache never serves one name's response for another.
 */
describe('bypass: name confusion between CONNECT, SNI, Host and :authority', () => {
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

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));
  const at = (name: string): string => `${name}:${lab.httpsPort}`;

  test('CONNECT other.test with SNI and Host storage.test: /admin/secret does not pass under the laxer rule', async () => {
    const { text } = await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: at('other.test'),
      sni: 'storage.test',
      caFile: gw.caFile,
      payload: `GET /admin/secret HTTP/1.1\r\nHost: ${at('storage.test')}\r\nConnection: close\r\n\r\n`,
    });
    await settle();
    expect(statuses(text)).not.toContain(200);
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
    const record = (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.sni === 'storage.test' && r.target === at('other.test')).pop();
    expect(record?.action).toBe('deny');
    expect(record?.decision_code).toBe('fronting');
  });

  test('CONNECT other.test with SNI storage.test: an upload carrying an AWS key does not reach the origin', async () => {
    const body = `key=${AWS_KEY}`;
    await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: at('other.test'),
      sni: 'storage.test',
      caFile: gw.caFile,
      payload: `POST /public/upload HTTP/1.1\r\nHost: ${at('storage.test')}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    });
    await settle();
    expect(lab.seen.filter((s) => s.body.includes(AWS_KEY))).toEqual([]);
  });

  test('tunnel and SNI storage.test with Host other.test: 403, nothing reaches the origin', async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '-H', `Host: ${at('other.test')}`, `https://${at('storage.test')}/admin/secret`]);
    await settle();
    expect(res.status).toBe(403);
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
    const record = (await gw.requestRecords('/admin/secret')).pop();
    expect(record?.status).toBe(403);
    expect(record?.action).toBe('deny');
    expect(record?.decision_code).toBe('fronting');
    expect(record?.authority).toBe(at('other.test'));
  });

  test('HTTP/2: :authority other.test on a storage.test connection is refused and recorded with its authority', async () => {
    const { session, alpn } = await h2Session(gw.explicitPort, 'storage.test', lab.httpsPort, ca);
    try {
      expect(alpn).toBe('h2');
      const refused = await h2Request(session, '/admin/secret', { ':authority': at('other.test') });
      expect(refused.status).toBe(403);
      // The same connection still serves its own name (control).
      const own = await h2Request(session, '/public/readme');
      expect(own.status).toBe(200);
      expect(echoed(own.body)?.sni).toBe('storage.test');
    } finally {
      session.close();
    }
    await settle();
    expect(lab.requestsFor('/admin/secret')).toEqual([]);
    const record = (await gw.requestRecords('/admin/secret')).filter((r) => r.http_version === '2.0').pop();
    expect(record?.status).toBe(403);
    expect(record?.authority).toBe(at('other.test'));
  });

  test('HTTP/2: a Host field that disagrees with :authority is refused', async () => {
    const { session } = await h2Session(gw.explicitPort, 'storage.test', lab.httpsPort, ca);
    try {
      const refused = await h2Request(session, '/public/readme?two-names', { host: at('other.test') });
      expect(refused.status).toBe(403);
    } finally {
      session.close();
    }
    expect(lab.seen.filter((s) => s.path.includes('two-names'))).toEqual([]);
  });

  test('the tunnel name governs when Host agrees: rules of storage.test apply (control)', async () => {
    const denied = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${at('storage.test')}/admin/secret`]);
    expect(denied.status).toBe(403);
    const allowed = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${at('storage.test')}/public/readme`]);
    expect(allowed.status).toBe(200);
    expect(echoed(allowed.body)).toMatchObject({ sni: 'storage.test', path: '/public/readme' });
  });

  test('cache: a response fetched with SNI evil.test and Host victim.test is never served to victim.test', async () => {
    const path = '/shared?cc=public,max-age=600';
    const poison = await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: at('evil.test'),
      sni: 'evil.test',
      caFile: gw.caFile,
      payload: `GET ${path} HTTP/1.1\r\nHost: ${at('victim.test')}\r\nConnection: close\r\n\r\n`,
    });
    expect(statuses(poison.text)).not.toContain(200);
    const victim = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${at('victim.test')}${path}`]);
    expect(victim.status).toBe(200);
    expect(echoed(victim.body)?.sni).toBe('victim.test');
    // A second fetch is a hit, and still victim's own.
    const again = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${at('victim.test')}${path}`]);
    expect(echoed(again.body)?.sni).toBe('victim.test');
    const records = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === path && r.status === 200);
    expect(records.map((r) => r.cache)).toEqual(['miss', 'hit']);
  });
});
