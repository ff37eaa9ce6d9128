import { existsSync, readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { AuditRecord, ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';

/**
 * Flows still open when a SIGTERM drain's grace period ends are cut, and their audit records
 * are written before the gateway stops: the connection records with `close: shutdown`, and the
 * records of the requests that were in flight. (Before, the audit sink was closed one event-loop
 * turn after the sockets were destroyed, and every one of these records was lost.)
 */

const SHUTTING_DOWN = /^TG_ERR_SHUTTING_DOWN: /;

/** An endless response: headers and a first chunk at once, then a chunk every 100 ms until the client goes. */
function drip(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  res.write(Buffer.alloc(1000, 0x61));
  const timer = setInterval(() => res.write(Buffer.alloc(1000, 0x62)), 100);
  res.on('close', () => clearInterval(timer));
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Resolves once `socket` has received at least `bytes` bytes (bounded by `timeoutMs`). */
function received(socket: net.Socket | tls.TLSSocket, bytes: number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const timer = setTimeout(() => reject(new Error(`only ${data.length} of ${bytes} bytes arrived: ${data.slice(0, 200)}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      data += chunk.toString('latin1');
      if (data.length < bytes) return;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      resolve(data);
    };
    socket.on('data', onData);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A CONNECT tunnel through the explicit proxy, established (200 read). */
async function tunnel(proxyPort: number, authority: string): Promise<net.Socket> {
  const socket = await connect(proxyPort);
  socket.on('error', () => undefined);
  const reply = received(socket, 'HTTP/1.1 200 Connection Established\r\n\r\n'.length);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  expect(await reply).toMatch(/^HTTP\/1\.1 200 /);
  return socket;
}

describe('flows open at the end of the SIGTERM drain', () => {
  let gw: TestGateway;
  let plainOrigin: http.Server;
  let tlsOrigin: https.Server;
  let echoOrigin: net.Server;
  let plainPort = 0;
  let tlsPort = 0;
  let echoPort = 0;
  const clients: net.Socket[] = [];

  beforeAll(async () => {
    const dir = tempDir('shutdown-audit');
    const ca = issue({ commonName: 'shutdown origin CA', isCa: true });
    const leaf = issue({ commonName: 'inspect.test', dnsNames: ['inspect.test'], issuer: ca });
    plainOrigin = http.createServer(drip);
    tlsOrigin = https.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: ['http/1.1'] }, drip);
    tlsOrigin.on('tlsClientError', () => undefined);
    echoOrigin = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    plainPort = await listen(plainOrigin);
    tlsPort = await listen(tlsOrigin);
    echoPort = await listen(echoOrigin);
    gw = await startTestGateway({
      allowedPorts: { tunnel: [tlsPort, echoPort], http: [plainPort] },
      hostNames: ['splice.test', 'inspect.test'],
      upstreamCaFile: writePem(dir, 'origin-ca.pem', ca.certPem),
      policies: {
        'a.yaml': [
          'rules:',
          '  - match: origin.test',
          '    action: splice',
          '  - match: splice.test',
          '    action: splice',
          '    non_tls: splice',
          '  - match: inspect.test',
          '    action: inspect',
          '',
        ].join('\n'),
      },
    });
  });

  afterAll(async () => {
    for (const socket of clients) socket.destroy();
    await gw.stop();
    plainOrigin.closeAllConnections();
    tlsOrigin.closeAllConnections();
    await Promise.all([plainOrigin, tlsOrigin, echoOrigin].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  });

  test('are cut with close: shutdown, and their records and their in-flight requests reach the audit file before stop() resolves', async () => {
    // A plain download in flight.
    const plain = await connect(gw.explicitPort);
    clients.push(plain);
    plain.on('error', () => undefined);
    const plainBody = received(plain, 1500);
    plain.write(`GET http://origin.test:${plainPort}/drip HTTP/1.1\r\nHost: origin.test:${plainPort}\r\n\r\n`);
    expect(await plainBody).toMatch(/^HTTP\/1\.1 200 /);

    // A spliced tunnel carrying bytes.
    const spliced = await tunnel(gw.explicitPort, `splice.test:${echoPort}`);
    clients.push(spliced);
    const echoed = received(spliced, 14);
    spliced.write('SSH-2.0-test\r\n');
    expect(await echoed).toBe('SSH-2.0-test\r\n');

    // An inspected tunnel with a download in flight.
    const raw = await tunnel(gw.explicitPort, `inspect.test:${tlsPort}`);
    clients.push(raw);
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: raw, servername: 'inspect.test', ca: readFileSync(gw.caFile, 'utf8'), ALPNProtocols: ['http/1.1'] }, () => resolve(s));
      s.once('error', reject);
    });
    secure.on('error', () => undefined);
    const inspectedBody = received(secure, 1500);
    secure.write('GET /drip HTTP/1.1\r\nHost: inspect.test\r\n\r\n');
    expect(await inspectedBody).toMatch(/^HTTP\/1\.1 200 /);

    // Their source ports name their records (a closed socket no longer knows its port).
    const ports = { plain: plain.localPort, spliced: spliced.localPort, inspected: raw.localPort };

    // SIGTERM with a short grace: all three are still open when it ends.
    const stopped = Date.now();
    await gw.gateway.stop(300);
    expect(Date.now() - stopped).toBeLessThan(3000);

    expect(existsSync(gw.auditFile)).toBe(true);
    const records = readFileSync(gw.auditFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AuditRecord);
    const connection = (port: number | undefined): ConnectionRecord[] => records.filter((r): r is ConnectionRecord => r.type === 'connection' && r.client_port === port);
    expect(connection(ports.plain)).toEqual([expect.objectContaining({ frontend: 'explicit-http', close: 'shutdown', requests: 1, error: expect.stringMatching(SHUTTING_DOWN) })]);
    expect(connection(ports.spliced)).toEqual([expect.objectContaining({ frontend: 'explicit-connect', close: 'shutdown', action: 'splice', target: `splice.test:${echoPort}` })]);
    expect(connection(ports.inspected)).toEqual([expect.objectContaining({ frontend: 'explicit-connect', close: 'shutdown', action: 'inspect', requests: 1 })]);
    const requests = records.filter((r): r is RequestRecord => r.type === 'request' && r.path === '/drip');
    expect(requests).toHaveLength(2);
    expect(requests.map((r) => r.scheme).sort()).toEqual(['http', 'https']);
    // Cut by the shutdown, not blamed on the origin or the client (the origin pools close too).
    for (const request of requests) expect(request).toMatchObject({ status: 200, error: expect.stringMatching(/^TG_ERR_SHUTTING_DOWN: cut at the end of limits\.shutdown_grace/) });
    // Nothing was written after the sink closed.
    const stoppedLine = gw.logs().find((l) => l.msg === 'gateway stopped');
    expect(stoppedLine).toMatchObject({ audit_records: records.length, audit_dropped: 0 });
  });
});
