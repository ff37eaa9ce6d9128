import net from 'node:net';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import { captureClientHello } from './support/client-hello';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { curl, run } from './support/run';
import { startTestOrigins, type TestOrigins } from './support/test-origins';

function connections(records: readonly { type: string }[]): ConnectionRecord[] {
  return records.filter((r): r is ConnectionRecord => r.type === 'connection' && (r as ConnectionRecord).frontend === 'transparent-tls');
}

describe('transparent TLS listener (curl --connect-to stands in for a REDIRECT rule)', () => {
  let origins: TestOrigins;
  let gw: TestGateway;
  let port: number;
  let seenRecords = 0;

  beforeAll(async () => {
    origins = await startTestOrigins();
    gw = await startTestGateway({
      listenSection: 'listen:\n  transparent_tls: 127.0.0.1:0',
      allowedPorts: { tunnel: [origins.tls.port], http: [80] },
      policies: {
        'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n  - match: inspect.test\n    action: inspect\n  - name: no-denied\n    match: denied.test\n    action: deny\n',
      },
      hostNames: ['inspect.test'],
      upstreamCaFile: origins.originCaFile,
      // The origin listens on an ephemeral port; a real deployment keeps the default 443.
      extraConfig: `transparent:\n  tls_origin_port: ${origins.tls.port}\nlimits:\n  peek_timeout: 700ms`,
    });
    port = gw.gateway.address('transparentTls')!.port;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
  });

  async function nextRecord(): Promise<ConnectionRecord> {
    seenRecords++;
    const list = await eventually(
      async () => connections(await gw.audit()),
      (l) => l.length >= seenRecords,
    );
    expect(list.length).toBeGreaterThanOrEqual(seenRecords);
    return list[seenRecords - 1]!;
  }

  test('a spliced SNI: the ClientHello is forwarded byte for byte, the client sees the origin certificate', async () => {
    const closed: string[] = [];
    const unsubscribe = subscribe('tollgate:flow:closed', (m) => closed.push(`${m.frontend}:${m.action}`));
    const res = await curl(['--connect-to', `origin.test:443:127.0.0.1:${port}`, '--cacert', origins.originCaFile, 'https://origin.test/hello']);
    await eventually(
      () => closed,
      (l) => l.length > 0,
    );
    unsubscribe();
    expect(closed).toEqual(['transparent-tls:splice']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'splice', target: `origin.test:${origins.tls.port}`, sni: 'origin.test', first_bytes: 'tls' });
    expect(origins.tls.seen.at(-1)!.headers.host).toBe('origin.test');
  });

  test('a ClientHello split over several TCP segments is reassembled before deciding', async () => {
    const hello = await captureClientHello('origin.test');
    const first = await new Promise<number | undefined>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', async () => {
        for (const cut of [
          [0, 3],
          [3, 40],
          [40, hello.length],
        ] as const) {
          socket.write(hello.subarray(cut[0], cut[1]));
          await new Promise((r) => setTimeout(r, 30));
        }
      });
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), 3000);
      socket.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        resolve(chunk[0]);
        socket.destroy();
      });
      socket.on('close', () => resolve(undefined));
    });
    // The origin's ServerHello: the spliced ClientHello arrived whole.
    expect(first).toBe(0x16);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'splice', sni: 'origin.test' });
  });

  test('an inspected SNI: a certificate minted for the SNI by the gateway CA', async () => {
    const untrusted = await curl(['--connect-to', `inspect.test:443:127.0.0.1:${port}`, '--cacert', origins.originCaFile, 'https://inspect.test/hello']);
    expect(untrusted.exitCode).toBe(60);
    seenRecords++;
    const res = await curl(['--connect-to', `inspect.test:443:127.0.0.1:${port}`, '--cacert', gw.caFile, 'https://inspect.test/hello']);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'inspect', sni: 'inspect.test' });
    const requests = (await gw.audit()).filter((r): r is RequestRecord => r.type === 'request' && r.flow_id === record.flow_id);
    expect(requests).toHaveLength(1);
  });

  test('openssl s_client shows the issuer: the gateway CA for inspect', async () => {
    const result = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'inspect.test', '-CAfile', gw.caFile, '-verify_return_error'], {
      input: 'Q\n',
      timeoutMs: 10_000,
    });
    const out = result.stdout.toString();
    expect(out).toMatch(/issuer=.*tollgate/);
    expect(out).toMatch(/subject=CN ?= ?inspect\.test/);
    expect(out).toMatch(/Verify return code: 0 \(ok\)/);
    await nextRecord();
  });

  test('a denied SNI gets a TLS access_denied alert and reaches no origin', async () => {
    const before = origins.tls.seen.length;
    const res = await curl(['--connect-to', `denied.test:443:127.0.0.1:${port}`, '--cacert', origins.originCaFile, 'https://denied.test/hello']);
    expect(res.exitCode).toBe(35);
    expect(res.stderr).toMatch(/access denied/i);
    expect(origins.tls.seen.length).toBe(before);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'deny', rule: 'no-denied', sni: 'denied.test', close: 'refused' });
  });

  test('no SNI: denied (transparent.no_sni), with a log line saying why', async () => {
    const result = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-noservername'], { input: 'Q\n', timeoutMs: 10_000 });
    expect(result.stdout.toString() + result.stderr).toMatch(/access denied/i);
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'deny', decision_code: 'sni', sni: null, close: 'refused' });
    expect(record.reason).toMatch(/no server name/);
    expect(gw.logs().some((l) => l.msg === 'transparent TLS connection refused' && /no server name \(SNI\)/.test(String(l.reason)))).toBe(true);
  });

  test('not TLS at all (plain HTTP on the TLS port): closed, with a log line saying why', async () => {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n'));
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), 3000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    expect(reply).toBe('');
    const record = await nextRecord();
    expect(record).toMatchObject({ action: 'deny', first_bytes: 'http', close: 'refused' });
    expect(gw.logs().some((l) => l.msg === 'transparent TLS connection refused' && /did not start with a TLS ClientHello/.test(String(l.reason)))).toBe(true);
  });

  test('a client that sends nothing is closed at peek_timeout', async () => {
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), 5000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    });
    expect(closedAfter).toBeGreaterThanOrEqual(600);
    expect(closedAfter).toBeLessThan(4000);
    const record = await nextRecord();
    expect(record).toMatchObject({ close: 'refused', first_bytes: 'none' });
    expect(record.error).toMatch(/TG_ERR_CLIENT_TIMEOUT/);
  });
});
