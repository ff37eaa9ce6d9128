import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RequestRecord } from '../../src/audit/record-fields';
import { startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { rawExchange } from './support/raw-tcp';
import { curl } from './support/run';
import { usersYaml } from './support/users';

/**
 * Review item 10: secrets a client sends must not reach the operational log or the audit
 * trail, wherever they sit: a password typed as a SOCKS user name, userinfo in an absolute-form
 * URL or a CONNECT target, API-key headers, and `token=` in Referer, Location or a path's
 * `;`-parameters. Each test plants a distinct secret and then searches everything written.
 */
describe('bypass: secrets in logs and audit records', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('plain');
    const usersFile = path.join(tempDir('users'), 'users.yaml');
    writeFileSync(usersFile, await usersYaml({ alice: { password: 'alice-pw', groups: [] } }));
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  socks: 127.0.0.1:0',
      allowedPorts: { tunnel: [443, origin.port], http: [origin.port] },
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  /** Everything the gateway wrote: operational log lines and the audit file. */
  async function written(): Promise<string> {
    await gw.gateway.flushAudit();
    return `${JSON.stringify(gw.logs())}\n${readFileSync(gw.auditFile, 'utf8')}`;
  }

  const alice = `Proxy-Authorization: Basic ${Buffer.from('alice:alice-pw').toString('base64')}\r\n`;

  test('a password typed as the SOCKS5 user name is logged as [unknown]', async () => {
    const socks = `127.0.0.1:${gw.gateway.address('socks')!.port}`;
    const res = await curl(['--socks5-hostname', socks, '--proxy-user', 'Typed-S3cret-AsName:x', `http://origin.test:${origin.port}/hello`]);
    expect(res.exitCode).not.toBe(0);
    const text = await written();
    expect(text).not.toContain('Typed-S3cret-AsName');
    expect(gw.logs().some((l) => l.msg === 'SOCKS5 authentication failed' && l.user === '[unknown]')).toBe(true);
  });

  test('userinfo in an absolute-form URL never reaches the audit path or the log', async () => {
    const host = `origin.test:${origin.port}`;
    const reply = await rawExchange(gw.explicitPort, `GET http://alice:Url-S3cretPass@${host}/hello HTTP/1.1\r\nHost: ${host}\r\n${alice}Connection: close\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    const text = await written();
    expect(text).not.toContain('Url-S3cretPass');
    expect(text).toContain('http://[REDACTED]@');
  });

  test('userinfo in a CONNECT target never reaches the log', async () => {
    const reply = await rawExchange(gw.explicitPort, `CONNECT bob:Connect-S3cret@origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n${alice}\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(await written()).not.toContain('Connect-S3cret');
  });

  test('API-key headers, and token= in Referer and in ;-parameters, are redacted in the audit record', async () => {
    const res = await curl([
      '-x',
      gw.proxy,
      '--proxy-user',
      'alice:alice-pw',
      '-H',
      'X-Api-Key: Header-S3cret-Key',
      '-H',
      'X-Auth-Token: Header-S3cret-Token',
      '-H',
      'Referer: https://app.example/page?token=Referer-S3cret&x=1',
      '--path-as-is',
      `http://origin.test:${origin.port}/hello;token=Param-S3cret;lang=en?q=1`,
    ]);
    expect(res.status).toBe(404);
    const text = await written();
    for (const secret of ['Header-S3cret-Key', 'Header-S3cret-Token', 'Referer-S3cret', 'Param-S3cret']) expect(text).not.toContain(secret);
    const record = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path.startsWith('/hello;')).pop();
    expect(record?.path).toBe('/hello;token=[REDACTED];lang=en?q=1');
    expect(record?.request_headers['x-api-key']).toBe('[REDACTED]');
    expect(record?.request_headers['referer']).toBe('https://app.example/page?token=[REDACTED]&x=1');
    // The origin still got what the client sent: redaction is for records only.
    expect(origin.seen.at(-1)?.headers['x-api-key']).toBe('Header-S3cret-Key');
  });
});
