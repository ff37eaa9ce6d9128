import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { buildCli } from './support/build';
import { tempDir } from './support/pki';
import { curl } from './support/run';
import { httpGet as get, spawnGateway } from './support/spawned-gateway';

/**
 * What a Kubernetes rollout relies on (deploy/kubernetes): on SIGTERM the replica says at once
 * that it wants no new traffic (/readyz 503), keeps serving what it already has for up to
 * limits.shutdown_grace, and then exits by itself. The origin here holds its answer until the
 * test releases it, so the order of events is fixed by the test, not by timing.
 */

let MAIN = '';

beforeAll(async () => {
  MAIN = await buildCli('drain');
}, 100_000);

interface HoldingOrigin {
  readonly port: number;
  /** Resolves when a request has arrived and is being held. */
  readonly arrived: Promise<void>;
  release(): void;
  close(): Promise<void>;
}

function startHoldingOrigin(): Promise<HoldingOrigin> {
  let release: () => void = () => undefined;
  let arrive: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const server = http.createServer((_req, res) => {
    arrive();
    void released.then(() => res.end('held and answered\n'));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        arrived,
        release,
        close: () => {
          release();
          server.closeAllConnections();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('readiness during a SIGTERM drain', () => {
  let origin: HoldingOrigin;

  beforeAll(async () => {
    origin = await startHoldingOrigin();
  });

  afterAll(async () => {
    await origin.close();
  });

  test('/readyz turns 503 at once, in-flight work finishes within the grace period, then the process exits 0', async () => {
    const dir = tempDir('drain');
    mkdirSync(path.join(dir, 'p'));
    writeFileSync(path.join(dir, 'p/a.yaml'), 'rules:\n  - match: origin.test\n    action: splice\n');
    writeFileSync(
      path.join(dir, 'tollgate.yaml'),
      [
        'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
        'policies: p',
        `allowed_ports:\n  http: [${origin.port}]`,
        'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
        'audit:\n  file: audit.ndjson',
        'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
        'pinning:\n  state_file: null',
        // Long enough that the test, not the grace period, decides when the request ends.
        'limits:\n  shutdown_grace: 60s',
      ].join('\n'),
    );
    const gw = await spawnGateway(MAIN, dir);
    try {
      expect(await get(gw.ports.admin!, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
      let finished = false;
      const inFlight = curl(['-x', `http://127.0.0.1:${gw.ports.explicit}`, `http://origin.test:${origin.port}/held`], 30_000).then((res) => {
        finished = true;
        return res;
      });
      await within(origin.arrived, 10_000, 'the request did not reach the origin');

      gw.child.kill('SIGTERM');
      let readyz = await get(gw.ports.admin!, '/readyz');
      for (let i = 0; i < 100 && readyz.status === 200; i++) {
        await new Promise((r) => setTimeout(r, 20));
        readyz = await get(gw.ports.admin!, '/readyz');
      }
      expect(readyz.status).toBe(503);
      expect(readyz.body).toMatch(/shutting down: draining in-flight work/);
      expect(await get(gw.ports.admin!, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      // Still serving what it had, not taking anything new.
      expect(finished).toBe(false);
      expect(await canConnect(gw.ports.explicit!)).toBe(false);

      origin.release();
      const res = await inFlight;
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: 'held and answered\n' });
      expect(await within(gw.exited, 20_000, 'the gateway did not exit')).toEqual({ code: 0, signal: null });
      const records = readFileSync(path.join(dir, 'audit.ndjson'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; path?: string; status?: number });
      expect(records.filter((r) => r.type === 'request' && r.path === '/held')).toEqual([expect.objectContaining({ status: 200 })]);
    } finally {
      gw.child.kill('SIGKILL');
    }
  });
});
