import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';

/**
 * An origin that counts requests per path and holds them while `held` is set, until
 * `release()`: so a test knows which requests are in flight together. Bodies carry the count.
 *   /cacheable?..   max-age=60
 *   /no-store?..    Cache-Control: no-store (the response turns out unstorable)
 */
interface Origin {
  readonly port: number;
  hits(path: string): number;
  held: boolean;
  release(): void;
  close(): Promise<void>;
}

async function startOrigin(): Promise<Origin> {
  const counts = new Map<string, number>();
  const waiting: (() => void)[] = [];
  const state = { held: false };
  const answer = (req: IncomingMessage, res: ServerResponse, n: number): void => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const cc = url.pathname === '/no-store' ? 'no-store' : 'max-age=60';
    const body = `${url.pathname} #${n}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': cc });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const key = req.url ?? '/';
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (state.held) waiting.push(() => answer(req, res, n));
    else answer(req, res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits: (path) => counts.get(path) ?? 0,
    get held() {
      return state.held;
    },
    set held(value: boolean) {
      state.held = value;
    },
    release() {
      state.held = false;
      for (const go of waiting.splice(0)) go();
    },
    close: () =>
      new Promise<void>((resolve) => {
        state.held = false;
        for (const go of waiting.splice(0)) go();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const WAITING = 'cache miss collapsed: waiting for the response another request is fetching';

describe('HTTP cache: collapsed misses', () => {
  let gw: TestGateway;
  let bounded: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startOrigin();
    const options = {
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'cache.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' },
    };
    gw = await startTestGateway(options);
    // Tight bounds: two waiters per key, half a second each.
    bounded = await startTestGateway({ ...options, extraConfig: 'cache:\n  collapse_max_waiters: 2\n  collapse_max_wait: 500ms\n' });
  });

  afterAll(async () => {
    await gw.stop();
    await bounded.stop();
    await origin.close();
  });

  afterEach(() => origin.release());

  const get = (via: TestGateway, path: string, extra: string[] = []) => curl(['-x', via.proxy, ...extra, `http://origin.test:${origin.port}${path}`]);
  const waiters = (via: TestGateway): number => via.logs().filter((l) => l.msg === WAITING).length;

  /** Sends the leader and waits until the origin holds it, then sends `others` more. */
  async function collapse(via: TestGateway, path: string, others: number, extra: string[] = []) {
    origin.held = true;
    const leader = get(via, path, extra);
    await eventually(
      () => origin.hits(path),
      (n) => n === 1,
    );
    expect(origin.hits(path)).toBe(1);
    const followers = Array.from({ length: others }, () => get(via, path, extra));
    return { leader, followers };
  }

  test('concurrent misses for one key become one origin request; the others are served its response', async () => {
    const path = '/cacheable?t=five';
    const before = waiters(gw);
    const { leader, followers } = await collapse(gw, path, 4);
    await eventually(
      () => waiters(gw) - before,
      (n) => n === 4,
    );
    expect(waiters(gw) - before).toBe(4);
    expect(origin.hits(path)).toBe(1);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(replies.map((r) => r.body)).toEqual(Array(5).fill('/cacheable #1\n'));
    expect(replies.slice(1).every((r) => /^tollgate; hit/.test(r.headers['cache-status'] ?? ''))).toBe(true);
    expect(origin.hits(path)).toBe(1);
    const records = await eventually(
      () => gw.requestRecords(path),
      (r) => r.length === 5,
    );
    expect(records.map((r) => r.cache).sort()).toEqual(['hit', 'hit', 'hit', 'hit', 'miss']);
  });

  test('beyond collapse_max_waiters the extra requests go to the origin at once', async () => {
    const path = '/cacheable?t=bounded';
    const before = waiters(bounded);
    const { leader, followers } = await collapse(bounded, path, 4);
    // Two wait, two go to the origin themselves (held there too).
    await eventually(
      () => origin.hits(path),
      (n) => n === 3,
    );
    expect(origin.hits(path)).toBe(3);
    expect(waiters(bounded) - before).toBe(2);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(origin.hits(path)).toBe(3);
  });

  test('a waiter gives up after collapse_max_wait and goes to the origin itself', async () => {
    const path = '/cacheable?t=timeout';
    const { leader, followers } = await collapse(bounded, path, 1);
    // The leader stays held; the follower's wait runs out and it asks the origin too.
    await eventually(
      () => origin.hits(path),
      (n) => n === 2,
    );
    expect(origin.hits(path)).toBe(2);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    expect(replies.map((r) => r.status)).toEqual([200, 200]);
  });

  test.each([
    ['Authorization', ['-H', 'Authorization: Bearer abc']],
    ['Cookie', ['-H', 'Cookie: session=abc']],
    ['no-store', ['-H', 'Cache-Control: no-store']],
  ])('requests with %s are never collapsed', async (name, extra) => {
    const path = `/cacheable?t=${name}`;
    const before = waiters(gw);
    const { leader, followers } = await collapse(gw, path, 2, extra);
    await eventually(
      () => origin.hits(path),
      (n) => n === 3,
    );
    expect(origin.hits(path)).toBe(3);
    expect(waiters(gw) - before).toBe(0);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    expect(replies.every((r) => r.status === 200)).toBe(true);
  });

  test('a response that turns out unstorable sends the waiters to the origin themselves', async () => {
    const path = '/no-store?t=waiters';
    const before = waiters(gw);
    const { leader, followers } = await collapse(gw, path, 2);
    await eventually(
      () => waiters(gw) - before,
      (n) => n === 2,
    );
    expect(waiters(gw) - before).toBe(2);
    expect(origin.hits(path)).toBe(1);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    // Each got its own response: nobody was handed another's unstorable answer.
    expect(replies.map((r) => r.body).sort()).toEqual(['/no-store #1\n', '/no-store #2\n', '/no-store #3\n']);
    expect(origin.hits(path)).toBe(3);
  });

  test('after an unstorable response, a burst to the same URL goes to the origin side by side, not in turn', async () => {
    const path = '/no-store?t=remembered';
    // The first answer is no-store: the URL is remembered as not storable.
    expect((await get(gw, path)).status).toBe(200);
    const before = waiters(gw);
    const { leader, followers } = await collapse(gw, path, 3);
    // All three followers reach the (holding) origin while the first is still held there.
    await eventually(
      () => origin.hits(path),
      (n) => n === 5,
    );
    expect(origin.hits(path)).toBe(5);
    expect(waiters(gw) - before).toBe(0);
    origin.release();
    const replies = await Promise.all([leader, ...followers]);
    expect(replies.every((r) => r.status === 200)).toBe(true);
  });

  test('a waiter whose client leaves is audited, and the others are still served', async () => {
    const path = '/cacheable?t=leaves';
    const before = waiters(gw);
    origin.held = true;
    const leader = get(gw, path);
    await eventually(
      () => origin.hits(path),
      (n) => n === 1,
    );
    // curl gives up after one second, while waiting behind the held leader.
    const impatient = curl(['-x', gw.proxy, '--max-time', '1', `http://origin.test:${origin.port}${path}`], 1000);
    const patient = get(gw, path);
    await eventually(
      () => waiters(gw) - before,
      (n) => n === 2,
    );
    expect((await impatient).exitCode).not.toBe(0);
    origin.release();
    expect((await leader).body).toBe('/cacheable #1\n');
    expect((await patient).body).toBe('/cacheable #1\n');
    expect(origin.hits(path)).toBe(1);
    const records = await eventually(
      () => gw.requestRecords(path),
      (r) => r.length === 3,
    );
    expect(records.filter((r) => r.error === 'client closed before the response completed')).toHaveLength(1);
  });
});
