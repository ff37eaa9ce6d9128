import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import type { AuditRecord, ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { freePort } from './support/redis-server';
import { curl, run } from './support/run';
import { type Squid, startSquid } from './support/squid';

/**
 * Parent proxies with a real Squid as the parent: splice (CONNECT, then the relay), inspect
 * (CONNECT, then verified TLS with the origin inside it) and plain HTTP (absolute form) through
 * it; and what the client gets when the parent is down, refuses (403), wants credentials (407) or
 * never answers: a 502 naming the parent and its answer, in the page and in the audit record.
 */

/**
 * TLS in front of a parent (as stunnel would put it): an https:// parent URL is TLS to the
 * parent, verified like an origin, then the same proxy protocol inside.
 */
async function startTlsFront(cert: { certPem: string; keyPem: string }, backendPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (front) => {
    const back = net.connect(backendPort, '127.0.0.1');
    for (const s of [front, back]) {
      sockets.add(s);
      s.on('error', () => {
        front.destroy();
        back.destroy();
      });
    }
    front.pipe(back).pipe(front);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A listener that accepts and never says a word: a parent that hangs. */
async function startSilentParent(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const NAMES = [
  'splice.test',
  'inspect.test',
  'plain.test',
  'refused.test',
  'plain-refused.test',
  'auth-ok.test',
  'auth-bad.test',
  'auth-missing.test',
  'plain-auth-bad.test',
  'dead.test',
  'silent.test',
  'failover.test',
  'plain-failover.test',
  'badcert.test',
  'direct.test',
  'h2.test',
  'tls-parent.test',
  'untrusted-parent.test',
];

describe('parent proxies: a real Squid as the parent', () => {
  let squid: Squid;
  let authSquid: Squid;
  let silent: { port: number; close(): Promise<void> };
  let tlsFront: { port: number; close(): Promise<void> };
  let untrustedFront: { port: number; close(): Promise<void> };
  let tlsOrigin: Origin;
  let badOrigin: Origin;
  let httpOrigin: Origin;
  let h2Origin: http2.Http2SecureServer;
  let h2Port: number;
  let gw: TestGateway;
  let rootFile: string;
  let admin: string;

  beforeAll(async () => {
    const dir = tempDir('parents');
    const root = issue({ commonName: 'origin root', isCa: true });
    rootFile = writePem(dir, 'root.pem', root.certPem);
    const leaf = issue({ commonName: 'splice.test', dnsNames: NAMES, issuer: root });
    tlsOrigin = await startHttpsOrigin('tls-origin', { cert: leaf.certPem, key: leaf.keyPem });
    const selfSigned = issue({ commonName: 'badcert.test', dnsNames: ['badcert.test'] });
    badOrigin = await startHttpsOrigin('bad-origin', { cert: selfSigned.certPem, key: selfSigned.keyPem });
    httpOrigin = await startHttpOrigin('http-origin');
    h2Origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      const body = `hello from h2 origin over ${req.httpVersion}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    h2Origin.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => h2Origin.listen(0, '127.0.0.1', resolve));
    h2Port = (h2Origin.address() as AddressInfo).port;
    squid = await startSquid({ hosts: NAMES, deny: ['refused.test', 'plain-refused.test'] });
    authSquid = await startSquid({ hosts: NAMES, auth: { user: 'gateway', password: 'right-password' } });
    silent = await startSilentParent();
    tlsFront = await startTlsFront(issue({ commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], issuer: root }), squid.port);
    untrustedFront = await startTlsFront(issue({ commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'] }), squid.port);
    const deadPort = await freePort();
    const otherDeadPort = await freePort();

    const goodCredentials = path.join(dir, 'good.cred');
    writeFileSync(goodCredentials, 'gateway:right-password\n');
    const badCredentials = path.join(dir, 'bad.cred');
    writeFileSync(badCredentials, 'gateway:wrong-password\n');
    const ports = [tlsOrigin.port, badOrigin.port, httpOrigin.port, h2Port];
    const rule = (name: string, action: string, via: string) => `  - match: ${name}\n    action: ${action}\n    via: ${via}\n`;
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      allowedPorts: { tunnel: [...ports, 443], http: [...ports, 80] },
      upstreamSection: [
        'upstream:',
        '  hosts:',
        // Only direct.test resolves here: through a parent, names are the parent's to resolve.
        '    direct.test: 127.0.0.1',
        '  allow_addresses: [127.0.0.0/8]',
        `  ca_file: ${rootFile}`,
        '  connect_timeout: 2s',
        '  response_timeout: 3s',
        '  parents:',
        `    squid: { url: "${squid.url}" }`,
        `    squid-auth: { url: "${authSquid.url}", credentials_file: ${goodCredentials} }`,
        `    squid-bad-auth: { url: "${authSquid.url}", credentials_file: ${badCredentials} }`,
        `    squid-no-auth: { url: "${authSquid.url}" }`,
        `    dead: { url: "http://127.0.0.1:${deadPort}" }`,
        // Down too, and tried first only by plain HTTP: the request moves on to the next parent.
        `    dead-too: { url: "http://127.0.0.1:${otherDeadPort}" }`,
        `    silent: { url: "http://127.0.0.1:${silent.port}" }`,
        `    squid-tls: { url: "https://127.0.0.1:${tlsFront.port}" }`,
        `    untrusted-tls: { url: "https://127.0.0.1:${untrustedFront.port}" }`,
      ].join('\n'),
      policies: {
        'parents.yaml': [
          'rules:\n',
          rule('splice.test', 'splice', 'squid'),
          rule('inspect.test', 'inspect', 'squid'),
          rule('badcert.test', 'inspect', 'squid'),
          rule('h2.test', 'inspect', 'squid'),
          rule('tls-parent.test', 'inspect', 'squid-tls'),
          rule('untrusted-parent.test', 'splice', 'untrusted-tls'),
          rule('plain.test', 'splice', 'squid'),
          rule('refused.test', 'splice', 'squid'),
          rule('plain-refused.test', 'splice', 'squid'),
          rule('auth-ok.test', 'splice', 'squid-auth'),
          rule('auth-bad.test', 'splice', 'squid-bad-auth'),
          rule('auth-missing.test', 'inspect', 'squid-no-auth'),
          rule('plain-auth-bad.test', 'splice', 'squid-bad-auth'),
          rule('dead.test', 'splice', 'dead'),
          rule('silent.test', 'splice', 'silent'),
          rule('failover.test', 'splice', '[dead, squid]'),
          rule('plain-failover.test', 'splice', '[dead-too, squid]'),
          '  - match: direct.test\n    action: splice\n',
          rule('169.254.0.0/16', 'splice', 'squid'),
        ].join(''),
      },
    });
    admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await squid?.stop();
    await authSquid?.stop();
    await silent?.close();
    await tlsFront?.close();
    await untrustedFront?.close();
    await tlsOrigin?.close();
    await badOrigin?.close();
    await httpOrigin?.close();
    h2Origin?.close();
  });

  /** CONNECT sent by python3's socket module; returns the gateway's whole answer (head and page). */
  const connectWithPython = async (authority: string): Promise<string> => {
    const script = [
      'import socket, sys',
      `s = socket.create_connection(("127.0.0.1", ${gw.explicitPort}), timeout=10)`,
      `s.sendall(b"CONNECT ${authority} HTTP/1.1\\r\\nHost: ${authority}\\r\\n\\r\\n")`,
      'data = b""',
      'for _ in range(100):',
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    data += chunk',
      'sys.stdout.write(data.decode("latin-1"))',
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 15_000 });
    return result.stdout.toString('latin1');
  };

  /** The connection record of a tunnel, once its flow has closed (bounded wait). */
  const connectionRecord = async (target: string): Promise<ConnectionRecord | undefined> => {
    const find = (records: AuditRecord[]) => records.find((r): r is ConnectionRecord => r.type === 'connection' && r.target === target);
    return find(await eventually(gw.audit, (records) => find(records) !== undefined));
  };

  /** The request record for host and path, once written (bounded wait). */
  const requestRecord = async (host: string, path: string): Promise<RequestRecord | undefined> => {
    const find = (records: RequestRecord[]) => records.find((r) => r.host === host);
    return find(
      await eventually(
        () => gw.requestRecords(path),
        (records) => find(records) !== undefined,
      ),
    );
  };

  /** Squid logs a tunnel when it ends: waits (bounded) for a matching line, then expects it. */
  const expectSquidLogged = async (parent: Squid, pattern: RegExp): Promise<void> => {
    const text = await eventually(
      () => parent.accessLog(),
      (log) => pattern.test(log),
    );
    expect(text).toMatch(pattern);
  };

  test('splice: CONNECT through Squid, then the relay; the origin certificate reaches the client untouched', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://splice.test:${tlsOrigin.port}/hello`]);
    expect(result.status).toBe(200);
    expect(result.body).toBe('hello from tls-origin\n');
    await expectSquidLogged(squid, new RegExp(`CONNECT splice\\.test:${tlsOrigin.port}`));
    const record = await connectionRecord(`splice.test:${tlsOrigin.port}`);
    expect(record).toMatchObject({ action: 'splice', via: 'squid', upstream_address: '127.0.0.1', error: null });
  });

  test('inspect: CONNECT through Squid, verified TLS with the origin inside it, HTTP rules and audit as usual', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://inspect.test:${tlsOrigin.port}/hello`]);
    expect(result.status).toBe(200);
    expect(result.body).toBe('hello from tls-origin\n');
    // Squid logs a tunnel when it ends; the inspected origin connection stays pooled. That the
    // request went through it shows in the name: only Squid resolves inspect.test.
    const record = await requestRecord('inspect.test', '/hello');
    expect(record).toMatchObject({ status: 200, via: 'squid', action: 'inspect' });
  });

  test('inspect with HTTP/2 on both sides: the h2 origin session runs inside the CONNECT through Squid', async () => {
    const result = await run('curl', ['-sS', '--http2', '--max-time', '15', '-x', gw.proxy, '--cacert', gw.caFile, '-w', '\n%{http_version} %{http_code}', `https://h2.test:${h2Port}/hello`], {
      timeoutMs: 20_000,
    });
    expect(result.stdout.toString()).toBe('hello from h2 origin over 2.0\n\n2 200');
    const record = await requestRecord('h2.test', '/hello');
    expect(record).toMatchObject({ status: 200, via: 'squid', http_version: '2.0' });
  });

  test('an https:// parent: verified TLS to the parent, CONNECT inside it, verified TLS to the origin inside that', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://tls-parent.test:${tlsOrigin.port}/hello`]);
    expect(result.status).toBe(200);
    expect(result.body).toBe('hello from tls-origin\n');
    expect(await requestRecord('tls-parent.test', '/hello')).toMatchObject({ status: 200, via: 'squid-tls' });
    // A parent whose certificate is not trusted is not talked to.
    const untrusted = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://untrusted-parent.test:${tlsOrigin.port}/hello`]);
    expect(untrusted.stderr).toMatch(/CONNECT tunnel failed, response 502/);
    const record = await connectionRecord(`untrusted-parent.test:${tlsOrigin.port}`);
    expect(record?.error).toMatch(/TG_ERR_PARENT_UNREACHABLE: parent proxy untrusted-tls .*failed verification: self-signed/);
  });

  test('inspect through Squid still verifies the origin certificate: a self-signed origin gets a 502', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://badcert.test:${badOrigin.port}/hello`]);
    expect(result.status).toBe(502);
    expect(result.body).toMatch(/self-signed/);
    await expectSquidLogged(squid, new RegExp(`CONNECT badcert\\.test:${badOrigin.port}`));
  });

  test('plain HTTP goes to Squid in absolute form (curl and python3 urllib)', async () => {
    const first = await curl(['-x', gw.proxy, `http://plain.test:${httpOrigin.port}/echo`]);
    expect(first.status).toBe(200);
    // Squid adds itself to Via: the request really went through it.
    expect(JSON.parse(first.body).headers.via).toMatch(/squid/);
    await expectSquidLogged(squid, new RegExp(`GET http://plain\\.test:${httpOrigin.port}/echo`));
    const script = [
      'import urllib.request',
      `opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "${gw.proxy}"}))`,
      `print(opener.open("http://plain.test:${httpOrigin.port}/hello", timeout=10).read().decode(), end="")`,
    ].join('\n');
    const python = await run('python3', ['-c', script], { timeoutMs: 15_000 });
    expect(python.stderr).toBe('');
    expect(python.stdout.toString()).toBe('hello from http-origin\n');
    const record = await requestRecord('plain.test', '/hello');
    expect(record).toMatchObject({ status: 200, via: 'squid', scheme: 'http' });
  });

  test('a parent that refuses (Squid acl: 403) gives a 502 naming the parent and its answer', async () => {
    const tunnel = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://refused.test:${tlsOrigin.port}/hello`]);
    expect(tunnel.stderr).toMatch(/CONNECT tunnel failed, response 502/);
    const record = await connectionRecord(`refused.test:${tlsOrigin.port}`);
    expect(record?.error).toMatch(/TG_ERR_PARENT_REFUSED: parent proxy squid \(http:\/\/127\.0\.0\.1:\d+\) answered 403 Forbidden/);
    const plain = await curl(['-x', gw.proxy, `http://plain-refused.test:${httpOrigin.port}/hello`]);
    expect(plain.status).toBe(502);
    expect(plain.body).toMatch(/parent proxy squid .*answered 403/);
    expect(httpOrigin.seen.some((r) => r.url.includes('plain-refused'))).toBe(false);
  });

  test('credentials from credentials_file open an authenticating parent', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://auth-ok.test:${tlsOrigin.port}/hello`]);
    expect(result.status).toBe(200);
    await expectSquidLogged(authSquid, /CONNECT auth-ok\.test:\d+ gateway /);
  });

  test("a parent's 407 (wrong or missing credentials) reaches the client as a 502, never as a 407", async () => {
    const wrong = await connectWithPython(`auth-bad.test:${tlsOrigin.port}`);
    expect(wrong).toMatch(/^HTTP\/1\.1 502 /);
    expect(wrong).toMatch(/parent proxy squid-bad-auth .*answered 407 Proxy Authentication Required/);
    expect(wrong).not.toMatch(/proxy-authenticate/i);
    const wrongRecord = await connectionRecord(`auth-bad.test:${tlsOrigin.port}`);
    expect(wrongRecord?.error).toMatch(/parent proxy squid-bad-auth .* answered 407 Proxy Authentication Required/);
    // Inspected: the tunnel is accepted, the request inside it gets the 502 page.
    const missing = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://auth-missing.test:${tlsOrigin.port}/hello`]);
    expect(missing.status).toBe(502);
    expect(missing.body).toMatch(/parent proxy squid-no-auth .*answered 407/);
    expect(missing.headers['proxy-authenticate']).toBeUndefined();
    const plain = await curl(['-x', gw.proxy, `http://plain-auth-bad.test:${httpOrigin.port}/hello`]);
    expect(plain.status).toBe(502);
    expect(plain.body).toMatch(/parent proxy squid-bad-auth .*answered 407/);
    expect(plain.headers['proxy-authenticate']).toBeUndefined();
    const record = await requestRecord('plain-auth-bad.test', '/hello');
    expect(record).toMatchObject({ status: 502, via: 'squid-bad-auth' });
    expect(record?.error).toMatch(/TG_ERR_PARENT_REFUSED/);
    // The password is in no log line and no record.
    const everything = JSON.stringify(gw.logs()) + JSON.stringify(await gw.audit());
    expect(everything).not.toMatch(/wrong-password|right-password/);
    expect(everything).not.toContain(Buffer.from('gateway:wrong-password').toString('base64'));
  });

  test('a parent that is down gives a 502 naming it', async () => {
    const result = await connectWithPython(`dead.test:${tlsOrigin.port}`);
    expect(result).toMatch(/^HTTP\/1\.1 502 /);
    expect(result).toMatch(/parent proxy dead/);
    const record = await connectionRecord(`dead.test:${tlsOrigin.port}`);
    expect(record?.error).toMatch(/TG_ERR_PARENT_UNREACHABLE: parent proxy dead .*refused the connection/);
  });

  test('a parent that accepts and never answers gives a 502 after upstream.connect_timeout', async () => {
    const result = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://silent.test:${tlsOrigin.port}/hello`]);
    expect(result.stderr).toMatch(/CONNECT tunnel failed, response 502/);
    const record = await connectionRecord(`silent.test:${tlsOrigin.port}`);
    expect(record?.error).toMatch(/TG_ERR_PARENT_UNREACHABLE: parent proxy silent .*did not answer within 2000 ms/);
  });

  test('plain HTTP to a parent that accepts the request and never answers: a 502 naming the parent after upstream.response_timeout', async () => {
    const plain = await curl(['-x', gw.proxy, `http://silent.test:${httpOrigin.port}/quiet`]);
    expect(plain.status).toBe(502);
    expect(plain.body).toMatch(/parent proxy silent .*did not answer GET http:\/\/silent\.test:\d+\/quiet within 3000 ms/);
    const record = await requestRecord('silent.test', '/quiet');
    expect(record).toMatchObject({ status: 502, via: 'silent' });
    expect(record?.error).toMatch(/^TG_ERR_PARENT_UNREACHABLE: parent proxy silent \(http:\/\/127\.0\.0\.1:\d+\) did not answer GET/);
    expect(httpOrigin.seen.some((r) => r.url.includes('/quiet'))).toBe(false);
  });

  test('failover: a route [dead, squid] leaves through squid when dead is down (tunnel, and plain HTTP with [dead-too, squid])', async () => {
    const tunnel = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://failover.test:${tlsOrigin.port}/hello`]);
    expect(tunnel.status).toBe(200);
    await expectSquidLogged(squid, /CONNECT failover\.test/);
    expect(await connectionRecord(`failover.test:${tlsOrigin.port}`)).toMatchObject({ via: 'dead,squid', error: null });
    const plain = await curl(['-x', gw.proxy, `http://plain-failover.test:${httpOrigin.port}/hello`]);
    expect(plain.status).toBe(200);
    await expectSquidLogged(squid, /GET http:\/\/plain-failover\.test/);
  });

  test('the destination guard still checks literal addresses sent to a parent (tunnel and plain HTTP)', async () => {
    const tunnel = await curl(['-x', gw.proxy, '-k', 'https://169.254.169.254/latest/meta-data/']);
    expect(tunnel.stderr).toMatch(/CONNECT tunnel failed, response 403/);
    expect((await connectionRecord('169.254.169.254:443'))?.error).toMatch(/TG_ERR_DESTINATION_FORBIDDEN/);
    const plain = await curl(['-x', gw.proxy, 'http://169.254.169.254/latest/meta-data/']);
    expect(plain.status).toBe(403);
    expect(plain.body).toMatch(/TG_ERR_DESTINATION_FORBIDDEN|internal/);
    expect(squid.accessLog()).not.toMatch(/169\.254\.169\.254/);
  });

  test('direct stays direct, and metrics count attempts per parent (never per destination)', async () => {
    const direct = await curl(['-x', gw.proxy, '--cacert', rootFile, `https://direct.test:${tlsOrigin.port}/hello`]);
    expect(direct.status).toBe(200);
    expect(squid.accessLog()).not.toMatch(/direct\.test/);
    expect(await connectionRecord(`direct.test:${tlsOrigin.port}`)).toMatchObject({ via: 'direct' });
    const metrics = (await curl([`${admin}/metrics`])).body;
    expect(metrics).toMatch(/tollgate_parent_connections_total\{parent="squid",outcome="connected"\} [1-9]/);
    expect(metrics).toMatch(/tollgate_parent_connections_total\{parent="dead",outcome="unreachable"\} [1-9]/);
    expect(metrics).toMatch(/tollgate_parent_connections_total\{parent="squid-bad-auth",outcome="refused"\} [1-9]/);
    expect(metrics).not.toMatch(/parent_connections_total\{[^}]*\.test/);
  });
});
