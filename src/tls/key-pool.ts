import { createHash, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { GatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';

export type LeafKeyType = 'ecdsa-p256' | 'rsa-2048';

export interface LeafKey {
  /** Short SHA-256 of the public key: identifies the key in logs without revealing anything. */
  readonly id: string;
  readonly privateKey: KeyObject;
  /** PKCS #8 PEM, the form `tls.createSecureContext` takes. */
  readonly privateKeyPem: string;
  readonly spkiDer: Buffer;
}

export interface LeafKeyPoolOptions {
  /** Number of keys in use at once. Default 4. */
  readonly size?: number;
  /** Default ecdsa-p256: cheaper to sign with in every handshake than RSA. */
  readonly keyType?: LeafKeyType;
  readonly logger: Logger;
  /** The CA's SubjectPublicKeyInfo DER; no pool key may equal it. */
  readonly caSpkiDer: Buffer;
}

const generateKeyPairAsync = promisify(generateKeyPair);

async function generateLeafKey(keyType: LeafKeyType): Promise<LeafKey> {
  // The async form runs on the libuv thread pool, so the event loop keeps serving meanwhile.
  const { privateKey, publicKey } = keyType === 'rsa-2048' ? await generateKeyPairAsync('rsa', { modulusLength: 2048 }) : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  return Object.freeze({
    id: createHash('sha256').update(spkiDer).digest('hex').slice(0, 16),
    privateKey,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    spkiDer,
  });
}

/**
 * Pre-generated keys for minted leaves. Generating a key costs 100+ ms for RSA (and blocks the
 * event loop if done synchronously), so a new host must cost only a signature: leaves share a
 * few keys. Keys are handed out round-robin, and `rotate()` (called periodically by the owner)
 * replaces the oldest with a fresh one, which limits how long one key stays in use across many
 * hosts.
 */
export class LeafKeyPool {
  readonly keyType: LeafKeyType;
  /** Oldest first. */
  private readonly keys: LeafKey[];
  private cursor = 0;
  private rotation: Promise<void> | undefined;

  private constructor(
    keys: LeafKey[],
    keyType: LeafKeyType,
    private readonly caSpkiDer: Buffer,
    private readonly logger: Logger,
  ) {
    this.keys = keys;
    this.keyType = keyType;
  }

  static async create(opts: LeafKeyPoolOptions): Promise<LeafKeyPool> {
    const size = opts.size ?? 4;
    const keyType = opts.keyType ?? 'ecdsa-p256';
    if (!Number.isInteger(size) || size < 1) {
      throw new GatewayError('TG_ERR_CONFIG', 'config', `leaf key pool size must be a positive integer, got ${size}`);
    }
    let keys: LeafKey[];
    try {
      keys = await Promise.all(Array.from({ length: size }, () => generateLeafKey(keyType)));
    } catch (err) {
      throw new GatewayError('TG_ERR_CA', 'startup', `generating ${keyType} leaf keys failed: ${(err as Error).message}`, { cause: err });
    }
    for (const key of keys) assertNotCaKey(key, opts.caSpkiDer);
    opts.logger.debug({ size, key_type: keyType }, 'leaf key pool ready');
    return new LeafKeyPool(keys, keyType, opts.caSpkiDer, opts.logger);
  }

  get size(): number {
    return this.keys.length;
  }

  /** The next key, round-robin. */
  next(): LeafKey {
    const key = this.keys[this.cursor % this.keys.length]!;
    this.cursor = (this.cursor + 1) % this.keys.length;
    return key;
  }

  /**
   * Generates one fresh key in the background and retires the oldest. Certificates already
   * minted with the retired key keep working (their contexts hold the key). Concurrent calls
   * share one rotation. Never rejects: on failure the pool keeps its current keys and a warning
   * is logged.
   */
  rotate(): Promise<void> {
    this.rotation ??= (async () => {
      try {
        const key = await generateLeafKey(this.keyType);
        assertNotCaKey(key, this.caSpkiDer);
        const retired = this.keys.shift();
        this.keys.push(key);
        this.logger.debug({ added: key.id, retired: retired?.id }, 'rotated a leaf key');
      } catch (err) {
        this.logger.warn({ err }, 'leaf key rotation failed; keeping the current keys');
      } finally {
        this.rotation = undefined;
      }
    })();
    return this.rotation;
  }
}

function assertNotCaKey(key: LeafKey, caSpkiDer: Buffer): void {
  // Windows SChannel rejects a leaf whose key (identifier) equals its issuer's.
  if (key.spkiDer.equals(caSpkiDer)) {
    throw new GatewayError('TG_ERR_CA', 'startup', 'a leaf key equals the CA key; refusing to use it');
  }
}
