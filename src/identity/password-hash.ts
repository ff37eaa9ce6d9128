import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes for the users file: scrypt (RFC 7914) in a self-describing PHC-style string,
 *   $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
 * so parameters can be raised later without invalidating existing entries. scrypt runs on
 * libuv's thread pool (crypto.scrypt, not scryptSync): a verification never blocks the event
 * loop that carries everyone else's traffic.
 */

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

/** 2^15 x 8 x 128 bytes = 32 MiB and about 50-100 ms per check: OWASP's scrypt minimum and more. */
export const DEFAULT_SCRYPT: ScryptParams = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read from a file, so a mistyped entry cannot exhaust memory. */
const LIMITS = { ln: [10, 20], r: [1, 32], p: [1, 16] } as const;

export interface ParsedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const PATTERN = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

const HASH_FORMAT_HINT = 'expected "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" as written by `tollgate user add`';

/** Parses an encoded hash; returns a reason string when it is not one. */
export function parsePasswordHash(encoded: string): ParsedHash | string {
  const match = PATTERN.exec(encoded);
  if (!match) return HASH_FORMAT_HINT;
  const params: ScryptParams = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  for (const key of ['ln', 'r', 'p'] as const) {
    const [min, max] = LIMITS[key];
    if (params[key] < min || params[key] > max) return `scrypt parameter ${key}=${params[key]} is outside ${min}..${max}`;
  }
  const salt = Buffer.from(match[4]!, 'base64');
  const hash = Buffer.from(match[5]!, 'base64');
  if (salt.length < 8) return 'the salt is shorter than 8 bytes';
  if (hash.length < 16) return 'the hash is shorter than 16 bytes';
  return { params, salt, hash };
}

function derive(password: string, salt: Buffer, params: ScryptParams, keyBytes: number): Promise<Buffer> {
  const N = 2 ** params.ln;
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128 * N * r; Node's 32 MiB default is exactly the cost of ln=15, r=8.
    scrypt(password.normalize('NFC'), salt, keyBytes, { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function b64(buffer: Buffer): string {
  return buffer.toString('base64').replace(/=+$/, '');
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params, KEY_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** Constant-time comparison of a password against a parsed hash. */
export async function verifyPassword(password: string, stored: ParsedHash): Promise<boolean> {
  const key = await derive(password, stored.salt, stored.params, stored.hash.length);
  return timingSafeEqual(key, stored.hash);
}
