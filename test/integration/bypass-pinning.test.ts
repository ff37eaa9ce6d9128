import http from 'node:http';
import type { Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { AuditRecord, ConnectionRecord, PinningRecord } from '../../src/audit/record-fields';
import { runCheck } from '../../src/cli/check';
import { captureClientHello } from './support/client-hello';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl, run } from './support/run';

/**
 * Certificate-pinning detection must not be a switch any three client addresses can flip to
 * turn inspection (HTTP rules, DLP) off for a name. Each client below binds its own loopback
 * source address (127.0.0.2, .3, .4), as three machines would.
 */

const CLIENTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
const NAMES = ['quickclose.test', 'abort.test', 'alert.test', 'rules.test', 'dlp.test', 'optin.test'];
const CLIENT_TIMEOUT_MS = 10_000;

interface PinningFixture {
  readonly origin: Origin;
  readonly originCa: string;
}

async function startPinningOrigin(): Promise<PinningFixture> {
  const dir = tempDir('bypass-pinning');
  const ca = issue({ commonName: 'pinning bypass origin CA', isCa: true });
  const leaf = issue({ commonName: 'origin.test', dnsNames: NAMES, issuer: ca });
  return { origin: await startHttpsOrigin('pinned', { cert: leaf.certPem, key: leaf.keyPem }), originCa: writePem(dir, 'ca.pem', ca.certPem) };
}

function startPinningGateway(fixture: PinningFixture, policy: string): Promise<TestGateway> {
  return startTestGateway({
    allowedPorts: { tunnel: [fixture.origin.port], http: [80] },
    hostNames: NAMES,
    upstreamCaFile: fixture.originCa,
    policies: { 'p.yaml': policy },
    extraConfig: 'pinning:\n  mode: auto_splice\n  min_clients: 3\n  splice_for: 1h\n  state_file: null\n',
  });
}

/** A CONNECT tunnel through the explicit proxy from a chosen source address. */
function tunnelFrom(gw: TestGateway, from: string, authority: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.explicitPort, localAddress: from, method: 'CONNECT', path: authority, timeout: CLIENT_TIMEOUT_MS });
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200 || head.length > 0) reject(new Error(`CONNECT ${res.statusCode}`));
      else resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error('CONNECT timed out')));
    req.once('error', reject);
    req.end();
  });
}

/** What an attacker does: a full handshake that trusts the minted certificate, then hang up. */
async function handshakeAndHangUp(gw: TestGateway, from: string, name: string, port: number): Promise<void> {
  const tunnel = await tunnelFrom(gw, from, `${name}:${port}`);
  const ca = readFileSync(gw.caFile, 'utf8');
  await new Promise<void>((resolve, reject) => {
    const secure = tls.connect({ socket: tunnel, servername: name, ca, ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => secure.destroy(new Error('handshake timed out')), CLIENT_TIMEOUT_MS);
    secure.once('secureConnect', () => {
      if (!secure.authorized) reject(new Error(`minted certificate not trusted: ${String(secure.authorizationError)}`));
      secure.end();
    });
    secure.once('error', reject);
    secure.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A ClientHello, then a close (FIN) or reset (RST) without any alert once the gateway's first flight arrives. */
async function helloAndAbort(gw: TestGateway, from: string, name: string, port: number, hello: Buffer, how: 'close' | 'reset'): Promise<void> {
  const tunnel = await tunnelFrom(gw, from, `${name}:${port}`);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => tunnel.destroy(), CLIENT_TIMEOUT_MS);
    tunnel.once('data', () => (how === 'close' ? tunnel.destroy() : tunnel.resetAndDestroy()));
    tunnel.once('error', () => undefined);
    tunnel.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    tunnel.write(hello);
  });
}

/**
 * Node's own TLS client not trusting the gateway CA: it verifies only after its side of the
 * handshake and then destroys the socket, so under TLS 1.3 the gateway sees a reset before
 * Finished, with no alert.
 */
async function nodeClientRejects(gw: TestGateway, from: string, name: string, port: number): Promise<void> {
  const tunnel = await tunnelFrom(gw, from, `${name}:${port}`);
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const secure = tls.connect({ socket: tunnel, servername: name, minVersion: 'TLSv1.3' });
    const timer = setTimeout(() => secure.destroy(), CLIENT_TIMEOUT_MS);
    secure.once('secureConnect', () => secure.destroy());
    secure.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err);
    });
    secure.once('close', () => resolve(null));
  });
  expect(error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
}

/** A client that does not trust the gateway CA: curl sends an unknown_ca alert mid-handshake. */
const rejectWithAlert = (gw: TestGateway, fixture: PinningFixture, from: string, name: string) =>
  curl(['--interface', from, '-x', gw.proxy, '--cacert', fixture.originCa, `https://${name}:${fixture.origin.port}/hello`]);

/** The same with openssl s_client (OpenSSL sends unknown_ca when -verify_return_error fails). */
const rejectWithOpenssl = (gw: TestGateway, fixture: PinningFixture, from: string, name: string) =>
  run(
    'openssl',
    [
      's_client',
      '-bind',
      `${from}:0`,
      '-proxy',
      `127.0.0.1:${gw.explicitPort}`,
      '-connect',
      `${name}:${fixture.origin.port}`,
      '-servername',
      name,
      '-CAfile',
      fixture.originCa,
      '-verify_return_error',
    ],
    { input: 'Q\n', timeoutMs: CLIENT_TIMEOUT_MS },
  );

/** What `tollgate check` prints for the test gateway's configuration. */
function checkOutput(gw: TestGateway): string {
  const lines: string[] = [];
  runCheck(path.join(gw.dir, 'tollgate.yaml'), (line) => lines.push(line));
  return lines.join('\n');
}

/** Waits until the gateway has closed (and recorded) `count` flows for `name`. */
async function flowsClosed(gw: TestGateway, name: string, count: number): Promise<ConnectionRecord[]> {
  const records = await eventually(gw.audit, (r) => connections(r, name).length >= count);
  return connections(records, name);
}

function connections(records: readonly AuditRecord[], name: string): ConnectionRecord[] {
  return records.filter((x): x is ConnectionRecord => x.type === 'connection' && x.sni === name);
}

function pinningRecords(records: readonly AuditRecord[], name: string): PinningRecord[] {
  return records.filter((x): x is PinningRecord => x.type === 'pinning' && x.name === name);
}

/** An inspected request now: it succeeds only with the gateway CA, decided by the rule. */
async function expectInspected(gw: TestGateway, fixture: PinningFixture, name: string): Promise<void> {
  const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${name}:${fixture.origin.port}/hello?after`]);
  expect(res.status).toBe(200);
  const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.host === name && x.path === '/hello?after'));
  const request = records.find((x) => x.type === 'request' && x.host === name && x.path === '/hello?after')!;
  expect(request).toMatchObject({ action: 'inspect', decision_code: 'rule' });
  expect(pinningRecords(records, name)).toHaveLength(0);
}

/** Spliced now: the origin's own certificate reaches the client, and the record says why. */
async function expectSpliced(gw: TestGateway, fixture: PinningFixture, name: string): Promise<void> {
  await eventually(
    () => gw.gateway.pinning.isSpliced(name),
    (v) => v,
  );
  const res = await curl(['-x', gw.proxy, '--cacert', fixture.originCa, `https://${name}:${fixture.origin.port}/hello?spliced`]);
  expect(res.status).toBe(200);
  const records = await eventually(gw.audit, (r) => connections(r, name).some((x) => x.decision_code === 'pinning'));
  expect(connections(records, name).find((x) => x.decision_code === 'pinning')?.action).toBe('splice');
  expect(pinningRecords(records, name)).toEqual([expect.objectContaining({ action: 'auto-splice', distinct_clients: 3 })]);
}

describe('pinning detection counts only certificate rejections', () => {
  let fixture: PinningFixture;
  let gw: TestGateway;

  beforeAll(async () => {
    fixture = await startPinningOrigin();
    gw = await startPinningGateway(
      fixture,
      [
        'rules:',
        '  - match: [quickclose.test, abort.test, alert.test]',
        '    action: inspect',
        '  - name: with-http-rules',
        '    match: rules.test',
        '    action: inspect',
        '    http:',
        '      - name: no-admin',
        '        request: { path: "/admin/**" }',
        '        action: deny',
        '  - name: with-dlp',
        '    match: dlp.test',
        '    action: inspect',
        '    dlp:',
        '      detectors: [payment_card]',
        '      action: deny',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await fixture?.origin.close();
  });

  test('three addresses that complete the handshake with the minted certificate and hang up do not switch the name', async () => {
    for (const from of CLIENTS) await handshakeAndHangUp(gw, from, 'quickclose.test', fixture.origin.port);
    const closed = await flowsClosed(gw, 'quickclose.test', CLIENTS.length);
    expect(new Set(closed.map((x) => x.client))).toEqual(new Set(CLIENTS));
    expect(gw.gateway.pinning.isSpliced('quickclose.test')).toBe(false);
    expect(gw.gateway.pinning.report().find((n) => n.name === 'quickclose.test')).toBeUndefined();
    await expectInspected(gw, fixture, 'quickclose.test');
  });

  test('three addresses that abort the handshake without an alert (close, reset, Node client rejecting) are reported, never switched', async () => {
    const hello = await captureClientHello('abort.test');
    await helloAndAbort(gw, CLIENTS[0], 'abort.test', fixture.origin.port, hello, 'close');
    await helloAndAbort(gw, CLIENTS[1], 'abort.test', fixture.origin.port, hello, 'reset');
    await nodeClientRejects(gw, CLIENTS[2], 'abort.test', fixture.origin.port);
    await flowsClosed(gw, 'abort.test', CLIENTS.length);
    const seen = await eventually(
      () => gw.gateway.pinning.report().find((n) => n.name === 'abort.test'),
      (n) => (n?.failures ?? 0) >= CLIENTS.length,
    );
    expect(seen).toMatchObject({ clients: 0, failures: CLIENTS.length, lastSignal: 'handshake-aborted', splicedUntil: null });
    expect(gw.gateway.pinning.isSpliced('abort.test')).toBe(false);
    await expectInspected(gw, fixture, 'abort.test');
  });

  test('three addresses that reject the minted certificate with an unknown_ca alert switch a rule without HTTP rules or DLP to splice', async () => {
    expect((await rejectWithAlert(gw, fixture, CLIENTS[0], 'alert.test')).exitCode).not.toBe(0);
    expect((await rejectWithOpenssl(gw, fixture, CLIENTS[1], 'alert.test')).code).not.toBe(0);
    expect((await rejectWithAlert(gw, fixture, CLIENTS[2], 'alert.test')).exitCode).not.toBe(0);
    expect(gw.gateway.pinning.report().find((n) => n.name === 'alert.test')).toMatchObject({ clients: 3, lastSignal: 'alert-unknown-ca' });
    await expectSpliced(gw, fixture, 'alert.test');
  });

  test.each(['rules.test', 'dlp.test'])('the same rejections never switch %s, whose rule has HTTP rules or DLP', async (name) => {
    for (const from of CLIENTS) expect((await rejectWithAlert(gw, fixture, from, name)).exitCode).not.toBe(0);
    await flowsClosed(gw, name, CLIENTS.length);
    expect(gw.gateway.pinning.report().find((n) => n.name === name)).toMatchObject({ clients: 3, splicedUntil: null });
    expect(gw.gateway.pinning.isSpliced(name)).toBe(false);
    await expectInspected(gw, fixture, name);
  });

  test('tollgate check names the rules pinning detection never splices, and why', () => {
    const out = checkOutput(gw);
    expect(out).toMatch(/^pinning\.mode: auto_splice \(a name counts as pinned when 3 client addresses reject its minted certificate\)$/m);
    expect(out).toMatch(/never auto-spliced: with-http-rules \(HTTP rules or DLP; opt in with pinning\.auto_splice_allowed: true\), with-dlp \(HTTP rules or DLP/);
  });
});

describe('a rule with HTTP rules or DLP may opt in to auto-splice', () => {
  let fixture: PinningFixture;
  let gw: TestGateway;

  beforeAll(async () => {
    fixture = await startPinningOrigin();
    gw = await startPinningGateway(
      fixture,
      [
        'rules:',
        '  - name: opted-in',
        '    match: optin.test',
        '    action: inspect',
        '    pinning:',
        '      auto_splice_allowed: true',
        '    http:',
        '      - name: no-admin',
        '        request: { path: "/admin/**" }',
        '        action: deny',
        '    dlp:',
        '      detectors: [payment_card]',
        '      action: deny',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await fixture?.origin.close();
  });

  test('rejections from three addresses switch it, with the audit record', async () => {
    for (const from of CLIENTS) expect((await rejectWithAlert(gw, fixture, from, 'optin.test')).exitCode).not.toBe(0);
    await expectSpliced(gw, fixture, 'optin.test');
  });

  test('tollgate check lists the rule as opted in', () => {
    expect(checkOutput(gw)).toMatch(/may be auto-spliced although they have HTTP rules or DLP \(opted in\): opted-in$/m);
  });
});
