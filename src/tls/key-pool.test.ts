import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { GatewayError } from '../errors/gateway-error';
import { silentLogger } from '../logging/logger';
import { LeafKeyPool } from './key-pool';
import { captureLogger } from './testdata/harness';

const caKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caSpkiDer = caKeys.publicKey.export({ type: 'spki', format: 'der' });

test('hands out distinct ECDSA keys round-robin', async () => {
  const pool = await LeafKeyPool.create({ size: 3, logger: silentLogger(), caSpkiDer });
  expect(pool.size).toBe(3);
  expect(pool.keyType).toBe('ecdsa-p256');
  const order = Array.from({ length: 6 }, () => pool.next());
  expect(order.slice(3)).toEqual(order.slice(0, 3));
  expect(new Set(order.map((k) => k.id)).size).toBe(3);
  for (const key of order) {
    expect(key.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(key.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    expect(key.spkiDer.equals(caSpkiDer)).toBe(false);
    expect(key.id).toMatch(/^[0-9a-f]{16}$/);
  }
});

test('RSA-2048 keys on request', async () => {
  const pool = await LeafKeyPool.create({ size: 1, keyType: 'rsa-2048', logger: silentLogger(), caSpkiDer });
  expect(pool.next().privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
});

test('rotate() replaces the oldest key; concurrent calls share one rotation', async () => {
  const pool = await LeafKeyPool.create({ size: 2, logger: silentLogger(), caSpkiDer });
  const [first, second] = [pool.next(), pool.next()];
  const a = pool.rotate();
  const b = pool.rotate();
  expect(b).toBe(a);
  await a;
  const ids = new Set(Array.from({ length: 4 }, () => pool.next().id));
  expect(ids.size).toBe(2);
  expect(ids.has(first.id)).toBe(false);
  expect(ids.has(second.id)).toBe(true);
  await pool.rotate();
  const after = new Set(Array.from({ length: 4 }, () => pool.next().id));
  expect(after.has(second.id)).toBe(false);
  expect(pool.size).toBe(2);
});

test('rejects a bad size', async () => {
  await expect(LeafKeyPool.create({ size: 0, logger: silentLogger(), caSpkiDer })).rejects.toBeInstanceOf(GatewayError);
});

describe('with a key generator that misbehaves', () => {
  let nextKey: { publicKey: KeyObject; privateKey: KeyObject } | Error;
  let isolatedPool: typeof LeafKeyPool;

  beforeAll(() => {
    jest.isolateModules(() => {
      jest.doMock('node:crypto', () => {
        const actual = jest.requireActual<typeof import('node:crypto')>('node:crypto');
        const fake = Object.assign(() => undefined, {
          [promisify.custom]: async () => {
            if (nextKey instanceof Error) throw nextKey;
            return nextKey;
          },
        });
        return { ...actual, generateKeyPair: fake };
      });
      isolatedPool = (jest.requireActual('./key-pool') as typeof import('./key-pool')).LeafKeyPool;
    });
  });

  afterAll(() => {
    jest.dontMock('node:crypto');
  });

  test('refuses a pool key equal to the CA key', async () => {
    nextKey = caKeys;
    const err: unknown = await isolatedPool.create({ size: 1, logger: silentLogger(), caSpkiDer }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as GatewayError).code).toBe('TG_ERR_CA');
    expect((err as Error).message).toMatch(/CA key/);
  });

  test('a failed rotation keeps the current keys and logs a warning', async () => {
    nextKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { logger, output } = captureLogger();
    const pool = await isolatedPool.create({ size: 1, logger, caSpkiDer });
    const before = pool.next().id;
    nextKey = new Error('entropy ran out');
    await expect(pool.rotate()).resolves.toBeUndefined();
    expect(pool.next().id).toBe(before);
    expect(output()).toContain('leaf key rotation failed');
    expect(output()).toContain('entropy ran out');
  });
});
