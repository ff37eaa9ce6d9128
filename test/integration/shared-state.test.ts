import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RedisStateStore } from '../../src/backplane/redis-state';
import { FailureThrottle, type FailureCounter, LocalFailureCounter } from '../../src/identity/failure-throttle';
import { PinningMonitor } from '../../src/terminals/pinning-monitor';
import { eventually } from './support/gateway';
import { type RedisServer, startRedis } from './support/redis-server';

/**
 * The fleet's shared state against a real redis-server: the Redis failure counter behaves as
 * the in-process one does (the same cases run against both), every key it writes expires, and a
 * store that cannot be reached makes calls fail at once instead of waiting.
 */

function captureLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

let redis: RedisServer;
let store: RedisStateStore;
let inspect: Redis;
let logs: () => Record<string, unknown>[];
const PREFIX = 'test-fleet:';

beforeAll(async () => {
  redis = await startRedis();
  const captured = captureLogger();
  logs = captured.lines;
  store = RedisStateStore.connect({ url: redis.url, passwordFile: null, caFile: null, keyPrefix: PREFIX, timeoutMs: 500 }, captured.logger);
  expect(await store.waitReady(5_000)).toBe(true);
  inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await inspect.connect();
});

afterAll(async () => {
  inspect.disconnect();
  await store.close();
  await redis.stop();
});

/** Every key under the prefix, with its remaining time to live. */
async function keysWithTtl(): Promise<Map<string, number>> {
  const keys = await inspect.keys(`${PREFIX}*`);
  const out = new Map<string, number>();
  for (const key of keys) out.set(key.slice(PREFIX.length), await inspect.pttl(key));
  return out;
}

describe.each([
  ['in this process', (max: number, windowMs: number): FailureCounter => new LocalFailureCounter(new FailureThrottle(max, windowMs))],
  ['shared through Redis', (max: number, windowMs: number): FailureCounter => store.failureCounter(max, windowMs)],
])('failure counter %s', (_where, make) => {
  let n = 0;
  const address = (): string => `10.9.${++n}.1`;

  test('refuses after max failures until the window ends; other addresses are unaffected', async () => {
    const counter = make(3, 60_000);
    const a = address();
    await counter.recordFailure(a);
    await counter.recordFailure(a);
    expect(await counter.retryAfterMs(a)).toBe(0);
    expect(await counter.recordFailure(a)).toEqual({ failures: 3, locked: true });
    const wait = await counter.retryAfterMs(a);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60_000);
    expect(await counter.retryAfterMs(address())).toBe(0);
  });

  test('no more slots than max failures at once; a success gives its slot back; the lock is reported once', async () => {
    const counter = make(3, 60_000);
    const a = address();
    const slots = await Promise.all([counter.reserve(a), counter.reserve(a), counter.reserve(a)]);
    expect(slots.every((slot) => slot !== null)).toBe(true);
    expect(await counter.reserve(a)).toBeNull();
    expect(await counter.retryAfterMs(a)).toBeGreaterThan(0);
    expect(await counter.reserve(address())).not.toBeNull();
    slots[0]!.release();
    expect(
      await eventually(
        () => counter.retryAfterMs(a),
        (w) => w === 0,
      ),
    ).toBe(0);
    expect(await slots[1]!.confirm()).toEqual({ failures: 1, locked: false });
    expect(await slots[2]!.confirm()).toEqual({ failures: 2, locked: false });
    expect(() => slots[2]!.release()).toThrow();
    expect(await counter.recordFailure(a)).toEqual({ failures: 3, locked: true });
    expect(await counter.recordFailure(a)).toEqual({ failures: 4, locked: false });
    expect(await counter.reserve(a)).toBeNull();
  });

  test('a window ends: the address may try again', async () => {
    const counter = make(1, 300);
    const a = address();
    expect(await counter.recordFailure(a)).toEqual({ failures: 1, locked: true });
    expect(await counter.retryAfterMs(a)).toBeGreaterThan(0);
    expect(
      await eventually(
        () => counter.retryAfterMs(a),
        (w) => w === 0,
        5_000,
      ),
    ).toBe(0);
    expect(await counter.reserve(a)).not.toBeNull();
  });
});

describe('shared failure counter', () => {
  test('two replicas count into one window: each sees the other’s failures', async () => {
    const one = store.failureCounter(4, 60_000);
    const two = store.failureCounter(4, 60_000);
    await one.recordFailure('10.8.0.1');
    await two.recordFailure('10.8.0.1');
    await (await one.reserve('10.8.0.1'))!.confirm();
    expect(await two.recordFailure('10.8.0.1')).toEqual({ failures: 4, locked: true });
    expect(await one.retryAfterMs('10.8.0.1')).toBeGreaterThan(0);
    expect(await one.reserve('10.8.0.1')).toBeNull();
  });

  test('every key it writes expires within its window', async () => {
    const counter = store.failureCounter(5, 30_000);
    for (let i = 0; i < 20; i++) await counter.recordFailure(`10.7.0.${i}`);
    const keys = await keysWithTtl();
    const auth = [...keys].filter(([key]) => key.startsWith('auth:'));
    expect(auth.length).toBeGreaterThanOrEqual(20);
    for (const [key, ttl] of auth) {
      expect({ key, expires: ttl > 0 && ttl <= 60_000 }).toEqual({ key, expires: true });
    }
  });
});

describe('shared pinning ledger', () => {
  test('three clients spread over three replicas make one quorum; one replica switches, all splice; keys expire', async () => {
    const ledger = (): ReturnType<RedisStateStore['pinningLedger']> => store.pinningLedger({ windowMs: 60_000, spliceForMs: 120_000, maxClientsPerName: 64, maxSplicedNames: 100 });
    const switches: string[] = [];
    const { logger } = captureLogger();
    const options = { mode: 'auto_splice' as const, minClients: 3, windowMs: 60_000, spliceForMs: 120_000, stateFile: null, syncIntervalMs: 60_000 };
    const replicas = ['a', 'b', 'c'].map((id) => new PinningMonitor({ ...options, ledger: ledger() }, logger, (name) => switches.push(`${id}:${name}`)));
    const [a, b, c] = replicas as [PinningMonitor, PinningMonitor, PinningMonitor];
    try {
      // One client each: no replica alone comes near min_clients.
      a.record('pinned.test', '10.0.0.1', 'alert-unknown-ca', true);
      b.record('pinned.test', '10.0.0.2', 'alert-unknown-ca', true);
      c.record('pinned.test', '10.0.0.3', 'alert-bad-certificate', true);
      expect(replicas.map((r) => r.report()[0]?.clients)).toEqual([1, 1, 1]);
      await eventually(
        () => switches.length,
        (n) => n > 0,
      );
      // The others learn of the switch from the ledger.
      await Promise.all(replicas.map((r) => r.sync()));
      expect(replicas.map((r) => r.isSpliced('pinned.test'))).toEqual([true, true, true]);
      expect(a.splicedNames().has('pinned.test')).toBe(true);
      expect(switches).toHaveLength(1);
      expect(switches[0]).toMatch(/^[abc]:pinned\.test$/);
      // A fourth rejection does not switch (or audit) the name again.
      a.record('pinned.test', '10.0.0.4', 'alert-unknown-ca', true);
      await new Promise((r) => setTimeout(r, 100));
      expect(switches).toHaveLength(1);
      const keys = await keysWithTtl();
      expect(keys.get('pin:c:pinned.test')).toBeGreaterThan(0);
      expect(keys.get('pin:c:pinned.test')).toBeLessThanOrEqual(60_000);
      expect(keys.get('pin:spliced')).toBeGreaterThan(0);
      expect(keys.get('pin:spliced')).toBeLessThanOrEqual(120_000);
    } finally {
      for (const r of replicas) r.stop();
    }
  });
});

describe('an unreachable store', () => {
  test('calls fail at once (no queue), health says so, and the store recovers when Redis is back', async () => {
    const counter = store.failureCounter(3, 60_000);
    await redis.stop();
    await eventually(
      () => store.health().up,
      (up) => !up,
    );
    expect(store.health()).toMatchObject({ up: false });
    await expect(counter.retryAfterMs('10.6.0.1')).rejects.toThrow();
    await expect(counter.reserve('10.6.0.1')).rejects.toThrow();
    expect(store.health().failedCommands).toBeGreaterThan(0);
    expect(logs().some((l) => String(l.msg).startsWith('state store unreachable: proxy authentication refuses'))).toBe(true);
    // Credentials never reach the log: the location is scheme, host, port and database.
    expect(store.health().location).toBe(`redis://127.0.0.1:${redis.port}/0`);

    await redis.start();
    await eventually(
      () => store.health().up,
      (up) => up,
      10_000,
    );
    expect(await counter.retryAfterMs('10.6.0.1')).toBe(0);
    expect(logs().some((l) => String(l.msg).startsWith('state store reachable again'))).toBe(true);
    await inspect.ping().catch(() => undefined);
  });
});

describe('configured files', () => {
  test('a state.password_file that cannot be read fails start-up, naming the key', () => {
    const { logger } = captureLogger();
    expect(() => RedisStateStore.connect({ url: redis.url, passwordFile: '/nonexistent/redis-password', caFile: null, keyPrefix: PREFIX, timeoutMs: 500 }, logger)).toThrow(
      /state\.password_file: cannot read \/nonexistent\/redis-password: ENOENT/,
    );
  });
});
