import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import type { Authenticator } from '../../src/identity/principal';
import { eventually, type SocksTestGateway, startSocksTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';
import { startTestOrigins, type TestOrigins } from './support/test-origins';
import { staticAuthenticator } from './support/users';

const POLICIES = {
  'splice.yaml': 'rules:\n  - match: origin.test\n    action: splice\n  - name: splice-loopback\n    match: 127.0.0.1\n    action: splice\n',
  'inspect.yaml': 'rules:\n  - match: inspect.test\n    action: inspect\n',
  'deny.yaml': 'rules:\n  - name: no-denied\n    match: denied.test\n    action: deny\n    reason: denied for the test\n',
};

/** The gateway both suites test: splice, inspect and deny by name, optionally with users. */
function startSocksGateway(origins: TestOrigins, authenticator?: Authenticator): Promise<SocksTestGateway> {
  return startSocksTestGateway({
    allowedPorts: { tunnel: [origins.tls.port], http: [80] },
    policies: POLICIES,
    hostNames: ['inspect.test'],
    upstreamCaFile: origins.originCaFile,
    ...(authenticator ? { authenticator } : {}),
  });
}

function connections(records: readonly { type: string }[]): ConnectionRecord[] {
  return records.filter((r): r is ConnectionRecord => r.type === 'connection');
}

async function lastSocksRecord(gw: TestGateway, count: number): Promise<ConnectionRecord | undefined> {
  const records = await eventually(
    async () => connections(await gw.audit()).filter((r) => r.frontend === 'socks'),
    (list) => list.length >= count,
  );
  return records[count - 1];
}

describe('SOCKS front-end with real curl', () => {
  let origins: TestOrigins;
  let gw: SocksTestGateway;
  let socks: string;
  let tlsPort: number;
  let socksRecords = 0;

  beforeAll(async () => {
    origins = await startTestOrigins();
    tlsPort = origins.tls.port;
    gw = await startSocksGateway(origins);
    socks = gw.socks;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
  });

  async function nextRecord(): Promise<ConnectionRecord> {
    socksRecords++;
    const record = await lastSocksRecord(gw, socksRecords);
    expect(record).toBeDefined();
    return record!;
  }

  test("--socks5-hostname to a spliced name: the origin's own certificate, decided by name", async () => {
    const decided: string[] = [];
    const unsubscribe = subscribe('tollgate:flow:decided', (m) => decided.push(`${m.frontend}:${m.action}`));
    try {
      const res = await curl(['--socks5-hostname', socks, '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.body).toBe('hello from tls\n');
    } finally {
      unsubscribe();
    }
    expect(decided).toContain('socks:splice');
    const record = await nextRecord();
    expect(record).toMatchObject({ frontend: 'socks', action: 'splice', target: `origin.test:${tlsPort}`, sni: 'origin.test', first_bytes: 'tls' });
    expect(record.bytes_to_client).toBeGreaterThan(0);
  });

  test('--socks5-hostname to an inspected name: a certificate minted by the gateway CA', async () => {
    // The origin CA alone does not verify: the client sees the gateway's minted certificate.
    const untrusted = await curl(['--socks5-hostname', socks, '--cacert', origins.originCaFile, `https://inspect.test:${tlsPort}/hello`]);
    expect(untrusted.exitCode).toBe(60);
    socksRecords++;
    const res = await curl(['--socks5-hostname', socks, '--cacert', gw.caFile, `https://inspect.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const record = await nextRecord();
    expect(record).toMatchObject({ frontend: 'socks', action: 'inspect', target: `inspect.test:${tlsPort}` });
    const requests = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.flow_id === record.flow_id);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: 'GET', status: 200 });
  });

  test('--socks5-hostname to a denied name: reply 0x02, nothing reaches the origin', async () => {
    const before = origins.tls.seen.length;
    const res = await curl(['--socks5-hostname', socks, '--cacert', origins.originCaFile, `https://denied.test:${tlsPort}/hello`]);
    expect(res.exitCode).toBe(97);
    // curl names the SOCKS5 reply code it got.
    expect(res.stderr).toMatch(/\(2\)/);
    expect(origins.tls.seen.length).toBe(before);
    const record = await nextRecord();
    expect(record).toMatchObject({ frontend: 'socks', action: 'deny', rule: 'no-denied', close: 'refused' });
  });

  test('--socks4a sends the name; decided by name and spliced', async () => {
    const res = await curl(['--socks4a', socks, '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'splice', target: `origin.test:${tlsPort}` });
  });

  test('--socks4a to a denied name gets 0x5B', async () => {
    const res = await curl(['--socks4a', socks, `https://denied.test:${tlsPort}/hello`]);
    expect(res.exitCode).toBe(97);
    expect(res.stderr).toMatch(/rejected|failed/i);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'deny', close: 'refused' });
  });

  test('--socks4 (client resolves) sends an address; the address rule and the SNI are both decided', async () => {
    const res = await curl(['--socks4', socks, '--resolve', `origin.test:${tlsPort}:127.0.0.1`, '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'splice', target: `127.0.0.1:${tlsPort}`, sni: 'origin.test', rule: 'splice-loopback' });
  });

  test('--socks5 (client resolves) to an inspected SNI: the stricter decision (inspect) wins, as for CONNECT', async () => {
    const res = await curl(['--socks5', socks, '--resolve', `inspect.test:${tlsPort}:127.0.0.1`, '--cacert', gw.caFile, `https://inspect.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'inspect', target: `127.0.0.1:${tlsPort}`, sni: 'inspect.test', decision_code: 'sni' });
  });

  test('--socks5 (client resolves) with a denied SNI: accepted by address, then refused with a TLS alert', async () => {
    const res = await curl(['--socks5', socks, '--resolve', `denied.test:${tlsPort}:127.0.0.1`, '--cacert', origins.originCaFile, `https://denied.test:${tlsPort}/hello`]);
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toMatch(/access denied/i);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'deny', sni: 'denied.test', close: 'refused' });
  });

  test('--proxy-user is ignored when no users are configured (no authentication is chosen)', async () => {
    const res = await curl(['--socks5-hostname', socks, '--proxy-user', 'someone:pw', '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    const record = await nextRecord();
    expect(record.user).toBeNull();
  });
});

describe('SOCKS5 username/password (RFC 1929)', () => {
  let origins: TestOrigins;
  let gw: SocksTestGateway;
  let socks: string;
  let tlsPort: number;
  const users = staticAuthenticator({ alice: { password: 'correct horse' } });

  beforeAll(async () => {
    origins = await startTestOrigins();
    tlsPort = origins.tls.port;
    gw = await startSocksGateway(origins, users);
    socks = gw.socks;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
  });

  test('--socks5-hostname with the right --proxy-user: allowed, and the user is in the audit record', async () => {
    const res = await curl(['--socks5-hostname', socks, '--proxy-user', 'alice:correct horse', '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    const record = await lastSocksRecord(gw, 1);
    expect(record).toMatchObject({ user: 'alice', action: 'splice' });
  });

  test('--socks5 with --proxy-user to an inspected name: user recorded on the decrypted requests too', async () => {
    const res = await curl(['--socks5-hostname', socks, '--proxy-user', 'alice:correct horse', '--cacert', gw.caFile, `https://inspect.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
    const record = await lastSocksRecord(gw, 2);
    expect(record).toMatchObject({ user: 'alice', action: 'inspect' });
    const requests = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.flow_id === record!.flow_id);
    expect(requests.map((r) => r.user)).toEqual(['alice']);
  });

  test('a wrong password is refused (status 0x01, close), logged without the password', async () => {
    const failures: string[] = [];
    const unsubscribe = subscribe('tollgate:auth:failed', (m) => failures.push(`${m.frontend}:${m.reason}`));
    const res = await curl(['--socks5-hostname', socks, '--proxy-user', 'alice:WRONG-PASSWORD-VALUE', `https://origin.test:${tlsPort}/hello`]).finally(unsubscribe);
    expect(failures).toEqual(['socks:bad-credentials']);
    expect(res.exitCode).toBe(97);
    expect(res.stderr).toMatch(/rejected by the SOCKS5 server \(1 1\)/);
    const record = await lastSocksRecord(gw, 3);
    expect(record).toMatchObject({ action: 'none', close: 'refused', user: null });
    expect(record!.error).toMatch(/TG_ERR_AUTH_REQUIRED/);
    const logs = JSON.stringify(gw.logs());
    expect(logs).toContain('SOCKS5 authentication failed');
    expect(logs).not.toContain('WRONG-PASSWORD-VALUE');
    expect(JSON.stringify(await gw.audit())).not.toContain('WRONG-PASSWORD-VALUE');
  });

  test('no credentials while users are configured: no acceptable method (0xFF)', async () => {
    const res = await curl(['--socks5-hostname', socks, `https://origin.test:${tlsPort}/hello`]);
    expect(res.exitCode).toBe(97);
    expect(res.stderr).toMatch(/no acceptable|authentication/i);
    const record = await lastSocksRecord(gw, 4);
    expect(record!.error).toMatch(/did not offer it/);
  });

  test('SOCKS4a cannot carry a password: refused with 0x5D while users are configured', async () => {
    const res = await curl(['--socks4a', socks, `https://origin.test:${tlsPort}/hello`]);
    expect(res.exitCode).toBe(97);
    const record = await lastSocksRecord(gw, 5);
    expect(record!.error).toMatch(/SOCKS4 cannot authenticate/);
  });
});
