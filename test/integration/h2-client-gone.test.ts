import { type ChildProcess, spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { cleanEnv, curl } from './support/run';
import { tlsRawExchange } from './support/tls-raw';

/**
 * Inspected tunnels end when their client does: an HTTP/2 client killed mid-download, one that
 * closes cleanly after its request, and an HTTP/1.1 request the parser refuses. Each flow must
 * close promptly with one connection record saying what happened, and free its per-client slot.
 */

const BIG_BYTES = 48 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const PER_CLIENT = 3;

describe('inspected tunnels end when the client goes away', () => {
  let gw: TestGateway;
  let origin: http2.Http2SecureServer;
  let port: number;
  let admin: string;
  /** /big streams on the origin: how each ended (complete or cut). */
  const bigStreams: { ended: 'complete' | 'cut' | null }[] = [];

  beforeAll(async () => {
    const dir = tempDir('h2-gone');
    const root = issue({ commonName: 'h2-gone origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    // An origin speaking h2 (and http/1.1): /big streams a large body under backpressure.
    origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      if (!req.url?.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`small ${req.url}\n`);
        return;
      }
      const state: { ended: 'complete' | 'cut' | null } = { ended: null };
      bigStreams.push(state);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BYTES) });
      let sent = 0;
      const pump = (): void => {
        while (sent < BIG_BYTES && !res.destroyed) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) {
            res.once('drain', pump);
            return;
          }
        }
        if (sent >= BIG_BYTES) res.end();
      };
      res.once('close', () => (state.ended = res.writableFinished ? 'complete' : 'cut'));
      pump();
    });
    origin.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      allowedPorts: { tunnel: [port], http: [80] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
      extraConfig: `limits:\n  max_connections_per_client: ${PER_CLIENT}\n  header_timeout: 2s`,
    });
    admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
  });

  afterAll(async () => {
    await gw.stop();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
  });

  const activeTunnels = async (): Promise<number> => {
    const text = (await curl([`${admin}/metrics`])).body;
    const m = /^tollgate_active_tunnels (\d+)$/m.exec(text);
    return m ? Number(m[1]) : -1;
  };

  const connections = async (): Promise<ConnectionRecord[]> => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection');

  const smallH2 = (path: string) => curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${port}${path}`], 10_000);

  /** curl --http2 reading /big at a crawl; resolves once it has received `bytes` of the body. */
  const slowDownload = (path: string, bytes: number): Promise<ChildProcess> =>
    new Promise((resolve, reject) => {
      const child = spawn('curl', ['-sS', '--http2', '--limit-rate', '64k', '--max-time', '30', '-x', gw.proxy, '--cacert', gw.caFile, '-o', '-', `https://origin.test:${port}${path}`], {
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let received = 0;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`curl received ${received} bytes of ${path} within 10 s`));
      }, 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) {
          clearTimeout(timer);
          resolve(child);
        }
      });
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`curl exited after ${received} bytes of ${path}`));
      });
    });

  const killed = (child: ChildProcess): Promise<void> =>
    new Promise((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });

  test('curl --http2 killed mid-download: the flow closes at once, the origin stream is cut, the slot is free', async () => {
    const paths = ['/big?kill=1', '/big?kill=2'];
    const children = await Promise.all(paths.map((p) => slowDownload(p, 128 * 1024)));
    expect(await activeTunnels()).toBe(2);
    await Promise.all(children.map(killed));

    // Within a bounded time: one request record and one connection record per flow, saying the
    // client went away (not that the origin stalled).
    const records = await eventually(
      () => gw.audit(),
      (all) => paths.every((p) => all.some((r) => r.type === 'request' && r.path === p && all.some((c) => c.type === 'connection' && c.flow_id === r.flow_id))),
      10_000,
    );
    for (const p of paths) {
      const request = records.find((r): r is RequestRecord => r.type === 'request' && r.path === p);
      expect(request).toMatchObject({ status: 200, http_version: '2.0', error: 'client closed before the response completed' });
      const connection = records.filter((r): r is ConnectionRecord => r.type === 'connection' && r.flow_id === request!.flow_id);
      expect(connection).toHaveLength(1);
      expect(['client-reset', 'client-closed']).toContain(connection[0]!.close);
      expect(connection[0]).toMatchObject({ error: null, requests: 1 });
    }
    expect(await eventually(activeTunnels, (n) => n === 0, 10_000)).toBe(0);
    // The origin side was cancelled too, not left streaming into a dead flow.
    expect(
      await eventually(
        () => bigStreams.map((s) => s.ended),
        (ends) => ends.length === 2 && ends.every((e) => e === 'cut'),
        10_000,
      ),
    ).toEqual(['cut', 'cut']);
    // The client's slots are free: as many new tunnels as the limit allows, then plain HTTP/2 works.
    for (let i = 0; i < PER_CLIENT + 1; i++) {
      const after = await smallH2(`/after-kill-${i}`);
      expect(`${after.status} ${after.stderr}`).toBe('200 ');
    }
  });

  test('sequential curl --http2 requests that close cleanly never hold a connection slot', async () => {
    await eventually(activeTunnels, (n) => n === 0, 10_000);
    const before = (await connections()).length;
    const runs = PER_CLIENT * 3;
    for (let i = 0; i < runs; i++) {
      const res = await smallH2(`/clean-${i}`);
      expect(`${i}: ${res.status} ${res.body.slice(0, 80)}`).toBe(`${i}: 200 small /clean-${i}\n`);
    }
    // Every tunnel closed with the client's close, promptly, not at limits.client_idle_timeout.
    const closed = await eventually(connections, (all) => all.length - before >= runs, 10_000);
    const mine = closed.slice(before);
    expect(mine).toHaveLength(runs);
    for (const record of mine) {
      expect(record).toMatchObject({ close: 'client-closed', error: null, requests: 1 });
      expect(record.duration_ms).toBeLessThan(5000);
    }
    expect(await eventually(activeTunnels, (n) => n === 0, 10_000)).toBe(0);
  });

  describe('a request the HTTP/1.1 parser refuses inside the tunnel is on the connection record', () => {
    const refused = async (payload: string, status: number): Promise<ConnectionRecord> => {
      const before = new Set((await connections()).map((r) => r.flow_id));
      const { text } = await tlsRawExchange({ proxyPort: gw.explicitPort, connect: `origin.test:${port}`, sni: 'origin.test', caFile: gw.caFile, payload, timeoutMs: 10_000 });
      expect(text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      const all = await eventually(connections, (rs) => rs.some((r) => !before.has(r.flow_id)), 10_000);
      const records = all.filter((r) => !before.has(r.flow_id));
      expect(records).toHaveLength(1);
      return records[0]!;
    };

    test('a malformed request line: 400, TG_ERR_BAD_REQUEST', async () => {
      const record = await refused(`GET  /x HTTP/1.1\r\nHost: origin.test:${port}\r\n\r\n`, 400);
      expect(record).toMatchObject({ requests: 0, close: 'refused' });
      expect(record.error).toMatch(/^TG_ERR_BAD_REQUEST: /);
    });

    test('Content-Length with Transfer-Encoding: 400, TG_ERR_BAD_REQUEST', async () => {
      const record = await refused(`POST /sink HTTP/1.1\r\nHost: origin.test:${port}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400);
      expect(record).toMatchObject({ requests: 0, close: 'refused' });
      expect(record.error).toMatch(/^TG_ERR_BAD_REQUEST: /);
    });

    test('headers over http.max_header_size: 431, TG_ERR_HEADERS_TOO_LARGE', async () => {
      const record = await refused(`GET /small HTTP/1.1\r\nHost: origin.test:${port}\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`, 431);
      expect(record).toMatchObject({ requests: 0, close: 'refused' });
      expect(record.error).toMatch(/^TG_ERR_HEADERS_TOO_LARGE: /);
    });

    test('headers not completed within limits.header_timeout: 408, TG_ERR_CLIENT_TIMEOUT', async () => {
      const record = await refused(`GET /small HTTP/1.1\r\nHost: origin.test:${port}\r\n`, 408);
      expect(record).toMatchObject({ requests: 0, close: 'timeout' });
      expect(record.error).toMatch(/^TG_ERR_CLIENT_TIMEOUT: /);
    });
  });
});
