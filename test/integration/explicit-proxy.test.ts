import net from 'node:net';
import { curl, run } from './support/run';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { fingerprint256, issue, tempDir, writePem } from './support/pki';
import { rawExchange } from './support/raw-tcp';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';

describe('explicit proxy: plain HTTP and CONNECT splice', () => {
  let plain: Origin;
  let tlsOrigin: Origin;
  let gw: TestGateway;
  let originCaFile: string;
  let originCertPem: string;

  beforeAll(async () => {
    const dir = tempDir('origin');
    const ca = issue({ commonName: 'origin test CA', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'denied.test', 'other.test'], issuer: ca });
    originCaFile = writePem(dir, 'origin-ca.pem', ca.certPem);
    originCertPem = leaf.certPem;
    plain = await startHttpOrigin('plain');
    tlsOrigin = await startHttpsOrigin('tls', { cert: leaf.certPem + ca.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      allowedPorts: { tunnel: [tlsOrigin.port], http: [plain.port] },
      policies: {
        'allowed.yaml': `rules:\n  - match: origin.test\n    action: splice\n    reason: test origin\n  - match: other.test\n    action: splice\n`,
        'denied.yaml': `rules:\n  - name: no-denied\n    match: denied.test\n    action: deny\n    reason: denied for the test\n`,
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await tlsOrigin.close();
  });

  test('plain HTTP is forwarded in origin-form with hop-by-hop headers removed and Via added', async () => {
    const before = plain.seen.length;
    const res = await curl([
      '-x',
      gw.proxy,
      '-H',
      'Proxy-Connection: keep-alive',
      '-H',
      'Connection: x-drop-me',
      '-H',
      'X-Drop-Me: secret',
      '-H',
      'X-Keep: yes',
      `http://origin.test:${plain.port}/hello?x=1`,
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from plain\n');
    const seen = plain.seen[before]!;
    expect(seen.url).toBe('/hello?x=1');
    expect(seen.headers.host).toBe(`origin.test:${plain.port}`);
    expect(seen.headers.via).toBe('1.1 tollgate');
    expect(seen.headers['proxy-connection']).toBeUndefined();
    expect(seen.headers['x-drop-me']).toBeUndefined();
    expect(seen.headers['x-keep']).toBe('yes');
    expect(res.headers.via).toBe('1.1 tollgate');
  });

  test('a denied plain HTTP request gets 403 with a block page naming the rule and a request id', async () => {
    const before = plain.seen.length;
    const res = await curl(['-x', gw.proxy, `http://denied.test:${plain.port}/hello`]);
    expect(res.status).toBe(403);
    expect(res.body).toContain('no-denied');
    expect(res.body).toContain('denied for the test');
    expect(res.headers['x-tollgate-request-id']).toMatch(/^[A-Za-z0-9_-]{12}-1$/);
    expect(res.body).toContain(res.headers['x-tollgate-request-id']!);
    expect(plain.seen.length).toBe(before);
  });

  test('a request body streams through and keep-alive reuses the client connection', async () => {
    const dir = tempDir('upload');
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x7a);
    const file = writePem(dir, 'upload.bin', big.toString('latin1'));
    const res = await curl(['-v', '-x', gw.proxy, '--data-binary', `@${file}`, `http://origin.test:${plain.port}/echo`, `http://origin.test:${plain.port}/hello`]);
    expect(res.exitCode).toBe(0);
    const echo = JSON.parse(res.body.slice(0, res.body.indexOf('}{') >= 0 ? res.body.indexOf('}{') + 1 : res.body.lastIndexOf('}') + 1)) as { length: number; sha256: string };
    expect(echo.length).toBe(big.length);
    expect(res.stderr).toMatch(/Re-using existing connection/);
  });

  test("CONNECT to an allowed name is spliced: the client sees the origin's own certificate", async () => {
    const res = await curl(['-x', gw.proxy, '--cacert', originCaFile, `https://origin.test:${tlsOrigin.port}/hello`]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from tls\n');
    const s = await run(
      'openssl',
      ['s_client', '-proxy', `127.0.0.1:${gw.explicitPort}`, '-connect', `origin.test:${tlsOrigin.port}`, '-servername', 'origin.test', '-CAfile', originCaFile, '-verify_return_error'],
      { input: 'Q\n', timeoutMs: 10_000 },
    );
    const out = s.stdout.toString();
    expect(out).toContain('Verify return code: 0 (ok)');
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)![0];
    expect(fingerprint256(pem)).toBe(fingerprint256(originCertPem));
  });

  test('CONNECT to a denied name gets 403 and nothing reaches the origin', async () => {
    const res = await curl(['-v', '-x', gw.proxy, '--cacert', originCaFile, `https://denied.test:${tlsOrigin.port}/hello`]);
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toMatch(/CONNECT tunnel failed, response 403|403/);
  });

  test('a ClientHello naming a denied host inside an allowed tunnel is refused', async () => {
    const before = tlsOrigin.seen.length;
    const s = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${gw.explicitPort}`, '-connect', `origin.test:${tlsOrigin.port}`, '-servername', 'denied.test', '-CAfile', originCaFile], {
      input: 'Q\n',
      timeoutMs: 10_000,
    });
    expect(s.stdout.toString()).not.toContain('BEGIN CERTIFICATE');
    expect(tlsOrigin.seen.length).toBe(before);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.sni === 'denied.test'));
    const rec = records.find((x): x is ConnectionRecord => x.type === 'connection' && x.sni === 'denied.test')!;
    expect(rec.action).toBe('deny');
    expect(rec.decision_code).toBe('sni');
  });

  test('CONNECT without a port is 400 and to a port not allowed is 403', async () => {
    expect(await rawExchange(gw.explicitPort, 'CONNECT origin.test HTTP/1.1\r\nHost: origin.test\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawExchange(gw.explicitPort, 'CONNECT origin.test:22 HTTP/1.1\r\nHost: origin.test:22\r\n\r\n')).toMatch(/^HTTP\/1\.1 403 /);
    expect(await rawExchange(gw.explicitPort, 'CONNECT [::1 HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
  });

  test('malformed input gets 400/431 and is never forwarded; the gateway keeps serving', async () => {
    const before = plain.seen.length;
    const url = `http://origin.test:${plain.port}/echo`;
    expect(await rawExchange(gw.explicitPort, 'THIS IS NOT HTTP\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawExchange(gw.explicitPort, `POST ${url} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)).toMatch(
      /^HTTP\/1\.1 400 /,
    );
    expect(await rawExchange(gw.explicitPort, `POST ${url} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawExchange(gw.explicitPort, `GET ${url} HTTP/1.1\r\nHost: other.test:${plain.port}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawExchange(gw.explicitPort, `GET ${url} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\nHost: other.test\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawExchange(gw.explicitPort, `POST ${url} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    const huge = `GET ${url} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`;
    expect(await rawExchange(gw.explicitPort, huge)).toMatch(/^HTTP\/1\.1 431 /);
    expect(plain.seen.length).toBe(before);
    const ok = await curl(['-x', gw.proxy, `http://origin.test:${plain.port}/hello`]);
    expect(ok.status).toBe(200);
  });

  test('a client that resets mid-transfer does not disturb others', async () => {
    await new Promise<void>((resolve) => {
      const socket = net.connect(gw.explicitPort, '127.0.0.1', () => {
        socket.write(`GET http://origin.test:${plain.port}/bytes?n=50000000 HTTP/1.1\r\nHost: origin.test:${plain.port}\r\n\r\n`);
      });
      socket.once('data', () => {
        socket.resetAndDestroy();
        resolve();
      });
      socket.on('error', () => resolve());
    });
    const ok = await curl(['-x', gw.proxy, `http://origin.test:${plain.port}/hello`]);
    expect(ok.status).toBe(200);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path.startsWith('/bytes') && x.error !== null));
    const rec = records.find((x): x is RequestRecord => x.type === 'request' && x.path.startsWith('/bytes'))!;
    expect(rec.error).toMatch(/client closed/);
  });

  test('garbage after CONNECT: non-TLS bytes are relayed to the spliced origin; a broken TLS record is refused', async () => {
    const opaque = await rawExchange(
      gw.explicitPort,
      `CONNECT origin.test:${plain.port} HTTP/1.1\r\nHost: origin.test:${plain.port}\r\n\r\nGET /hello HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n`,
    );
    // plain.port is not in the tunnel allow-list: refused before any relay.
    expect(opaque).toMatch(/^HTTP\/1\.1 403 /);
    const relayed = await rawExchange(gw.explicitPort, `CONNECT origin.test:${tlsOrigin.port} HTTP/1.1\r\nHost: x\r\n\r\nNOT TLS AT ALL\r\n\r\n`);
    expect(relayed).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\n/);
    const broken = await rawExchange(
      gw.explicitPort,
      Buffer.concat([Buffer.from(`CONNECT origin.test:${tlsOrigin.port} HTTP/1.1\r\nHost: x\r\n\r\n`), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00])]),
    );
    expect(broken.startsWith('HTTP/1.1 200 Connection Established\r\n\r\n')).toBe(true);
    // A fatal access_denied alert, then close.
    expect(Buffer.from(broken.slice('HTTP/1.1 200 Connection Established\r\n\r\n'.length), 'latin1')).toEqual(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]));
  });

  test('every tunnel leaves a connection record with decision, bytes and how it closed', async () => {
    await curl(['-x', gw.proxy, '--cacert', originCaFile, `https://other.test:${tlsOrigin.port}/hello`]);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.target === `other.test:${tlsOrigin.port}`));
    const rec = records.find((x): x is ConnectionRecord => x.type === 'connection' && x.target === `other.test:${tlsOrigin.port}`)!;
    expect(rec).toMatchObject({ frontend: 'explicit-connect', action: 'splice', sni: 'other.test', first_bytes: 'tls', client: '127.0.0.1' });
    expect(rec.bytes_from_client).toBeGreaterThan(200);
    expect(rec.bytes_to_client).toBeGreaterThan(500);
    // curl exits as soon as it has the body; bytes still unread then (the origin's TLS close_notify
    // or session tickets, when the machine is busy) make its kernel send a reset instead of a FIN.
    expect(['client-closed', 'upstream-closed', 'client-reset']).toContain(rec.close);
    expect(rec.flow_id).toMatch(/^[A-Za-z0-9_-]{12}$/);
    const logged = gw.logs().find((l) => l.msg === 'flow closed' && (l.record as ConnectionRecord | undefined)?.flow_id === rec.flow_id);
    expect(logged?.flow_id).toBe(rec.flow_id);
  });
});
