import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../errors/gateway-error';
import { silentLogger } from '../logging/logger';
import { loadOrCreateAuthority, type CaKeyType, type CertificateAuthority } from './ca';
import { nodeBytes, readCertificate } from './der';
import { LeafKeyPool, type LeafKey, type LeafKeyType } from './key-pool';
import { MAX_LEAF_VALIDITY_MS, mintLeaf, normaliseLeafSubject, type LeafSubject } from './mint-leaf';
import { opensslVerify, runProcess } from './testdata/harness';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

let dir: string;
const cas = new Map<CaKeyType, { authority: CertificateAuthority; certPath: string; keyPath: string }>();
const pools = new Map<LeafKeyType, LeafKeyPool>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollgate-mint-'));
  for (const keyType of ['ecdsa-p256', 'rsa-3072'] as const) {
    const certPath = join(dir, `${keyType}-ca.pem`);
    const keyPath = join(dir, `${keyType}-ca.key`);
    const { authority } = await loadOrCreateAuthority({ certPath, keyPath, keyType, logger: silentLogger() });
    cas.set(keyType, { authority, certPath, keyPath });
  }
  for (const keyType of ['ecdsa-p256', 'rsa-2048'] as const) {
    pools.set(keyType, await LeafKeyPool.create({ size: 2, keyType, logger: silentLogger(), caSpkiDer: cas.get('ecdsa-p256')!.authority.spkiDer }));
  }
}, 30_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function ca(type: CaKeyType = 'ecdsa-p256'): CertificateAuthority {
  return cas.get(type)!.authority;
}

function key(type: LeafKeyType = 'ecdsa-p256'): LeafKey {
  return pools.get(type)!.next();
}

const subjects: { subject: LeafSubject; check: string[]; san: string }[] = [
  { subject: { kind: 'dns', name: 'www.example.com' }, check: ['-verify_hostname', 'www.example.com'], san: 'DNS:www.example.com' },
  { subject: { kind: 'ip', address: '192.0.2.10' }, check: ['-verify_ip', '192.0.2.10'], san: 'IP Address:192.0.2.10' },
  { subject: { kind: 'ip', address: '2001:db8::10' }, check: ['-verify_ip', '2001:db8::10'], san: 'IP Address:2001:DB8:0:0:0:0:0:10' },
];

describe('every minted leaf passes openssl verify -x509_strict', () => {
  for (const caType of ['ecdsa-p256', 'rsa-3072'] as const) {
    for (const keyType of ['ecdsa-p256', 'rsa-2048'] as const) {
      test(`${caType} CA, ${keyType} leaf key`, async () => {
        const { certPath } = cas.get(caType)!;
        for (const { subject, check, san } of subjects) {
          const leafKey = key(keyType);
          const leaf = mintLeaf(ca(caType), leafKey, subject, { validityMs: 30 * DAY });
          const leafPath = join(dir, `leaf-${caType}-${keyType}-${subject.kind}.pem`);
          await writeFile(leafPath, leaf.certPem);
          const verify = await runProcess('openssl', ['verify', '-x509_strict', '-CAfile', certPath, ...check, leafPath]);
          expect(verify.stdout + verify.stderr).toBe(`${leafPath}: OK\n`);

          const text = (await runProcess('openssl', ['x509', '-noout', '-text', '-in', leafPath])).stdout;
          expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
          expect(text).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication\n/);
          expect(text).toMatch(keyType === 'rsa-2048' ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /Key Usage: critical\s+Digital Signature\n/);
          expect(text).toMatch(caType === 'rsa-3072' ? /Signature Algorithm: sha256WithRSAEncryption/ : /Signature Algorithm: ecdsa-with-SHA256/);
          expect(text).toMatch(new RegExp(`Subject Alternative Name: \\s*\\n\\s*${san}\\n`));
          expect(text).toContain(`Subject: CN = ${subject.kind === 'dns' ? subject.name : subject.address}\n`);

          const x509 = new X509Certificate(leaf.certDer);
          expect(x509.checkIssued(new X509Certificate(ca(caType).certDer))).toBe(true);
          expect(x509.verify(createPublicKey(ca(caType).certPem))).toBe(true);
          expect(x509.publicKey.export({ type: 'spki', format: 'der' }).equals(leafKey.spkiDer)).toBe(true);
          expect(x509.fingerprint256).toBe(leaf.fingerprint256);
          expect(x509.serialNumber).toBe(leaf.serialHex);
          expect(new Date(x509.validFrom).getTime()).toBe(leaf.notBefore.getTime());
          expect(new Date(x509.validTo).getTime()).toBe(leaf.notAfter.getTime());
          // The issuer is the CA's subject, byte for byte.
          expect(nodeBytes(leaf.certDer, readCertificate(leaf.certDer).issuer).equals(ca(caType).subjectDer)).toBe(true);
        }
      });
    }
  }
});

describe('leaf profile', () => {
  test('validity: backdated one hour, clamped to the CA, bounded at 47 days', () => {
    const now = new Date('2030-01-01T12:00:00.500Z');
    const authority = { ...ca(), notBefore: new Date('2029-01-01T00:00:00Z'), notAfter: new Date('2030-01-10T00:00:00Z') };
    const leaf = mintLeaf(authority, key(), { kind: 'dns', name: 'a.example' }, { now, validityMs: 5 * DAY });
    expect(leaf.notBefore.toISOString()).toBe('2030-01-01T11:00:00.000Z');
    expect(leaf.notAfter.toISOString()).toBe('2030-01-06T12:00:00.000Z');

    const clamped = mintLeaf(authority, key(), { kind: 'dns', name: 'a.example' }, { now, validityMs: 30 * DAY });
    expect(clamped.notAfter.toISOString()).toBe('2030-01-10T00:00:00.000Z');

    // A CA younger than the backdating window: the leaf does not start before its issuer.
    const young = { ...authority, notBefore: new Date('2030-01-01T11:30:00Z') };
    expect(mintLeaf(young, key(), { kind: 'dns', name: 'a.example' }, { now, validityMs: DAY }).notBefore.toISOString()).toBe('2030-01-01T11:30:00.000Z');

    expect(() => mintLeaf(ca(), key(), { kind: 'dns', name: 'a.example' }, { validityMs: MAX_LEAF_VALIDITY_MS + 1 })).toThrow(GatewayError);
    expect(() => mintLeaf(ca(), key(), { kind: 'dns', name: 'a.example' }, { validityMs: 0 })).toThrow(/between 0 and 47 days/);
    expect(() => mintLeaf(ca(), key(), { kind: 'dns', name: 'a.example' }, { validityMs: MAX_LEAF_VALIDITY_MS })).not.toThrow();

    const expired = { ...authority, notAfter: new Date('2030-01-01T00:00:00Z') };
    expect(() => mintLeaf(expired, key(), { kind: 'dns', name: 'a.example' }, { now, validityMs: DAY })).toThrow(/CA expired/);
  });

  test('serial numbers are positive 16-octet minimal INTEGERs, and distinct', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const leaf = mintLeaf(ca(), key(), { kind: 'dns', name: 'serial.example' }, { validityMs: DAY });
      const bytes = Buffer.from(leaf.serialHex, 'hex');
      expect(bytes.length).toBe(16);
      // Positive (top bit clear) and minimal (no leading zero octet).
      expect(bytes[0]! & 0x80).toBe(0);
      expect(bytes[0]).not.toBe(0);
      serials.add(leaf.serialHex);
    }
    expect(serials.size).toBe(2000);
  });

  test('a name longer than 64 characters gets no CN and a critical SAN, and still verifies', async () => {
    const name = `${'a'.repeat(60)}.${'b'.repeat(20)}.example`;
    const leaf = mintLeaf(ca(), key(), { kind: 'dns', name }, { validityMs: DAY });
    const leafPath = join(dir, 'long-name.pem');
    await writeFile(leafPath, leaf.certPem);
    const text = (await runProcess('openssl', ['x509', '-noout', '-text', '-in', leafPath])).stdout;
    expect(text).toMatch(/Subject:\s*\n/);
    expect(text).toMatch(/Subject Alternative Name: critical\s+DNS:a{60}\.b{20}\.example/);
    const verify = await opensslVerify(cas.get('ecdsa-p256')!.certPath, leafPath);
    expect(verify.stdout + verify.stderr).toBe(`${leafPath}: OK\n`);
  });

  test('refuses to mint with the CA key itself', async () => {
    const keyPem = await readFile(cas.get('ecdsa-p256')!.keyPath, 'utf8');
    const privateKey = createPrivateKey(keyPem);
    const caKey: LeafKey = { id: 'ca', privateKey, privateKeyPem: keyPem, spkiDer: ca().spkiDer };
    expect(() => mintLeaf(ca(), caKey, { kind: 'dns', name: 'a.example' }, { validityMs: DAY })).toThrow(/CA key/);
  });
});

describe('normaliseLeafSubject', () => {
  test.each<[LeafSubject, LeafSubject]>([
    [
      { kind: 'dns', name: 'WWW.Example.COM.' },
      { kind: 'dns', name: 'www.example.com' },
    ],
    [
      { kind: 'dns', name: 'bücher.example' },
      { kind: 'dns', name: 'xn--bcher-kva.example' },
    ],
    [
      { kind: 'dns', name: '_dmarc.example' },
      { kind: 'dns', name: '_dmarc.example' },
    ],
    [
      { kind: 'dns', name: '192.0.2.1' },
      { kind: 'ip', address: '192.0.2.1' },
    ],
    [
      { kind: 'dns', name: '[2001:DB8::1]' },
      { kind: 'ip', address: '2001:db8::1' },
    ],
    [
      { kind: 'ip', address: '2001:0db8:0000:0000:0000:0000:0000:0001' },
      { kind: 'ip', address: '2001:db8::1' },
    ],
    [
      { kind: 'ip', address: 'fe80::1%eth0' },
      { kind: 'ip', address: 'fe80::1' },
    ],
  ])('%j -> %j', (input, expected) => {
    expect(normaliseLeafSubject(input)).toEqual(expected);
  });

  test.each<LeafSubject>([
    { kind: 'dns', name: '' },
    { kind: 'dns', name: 'a b.example' },
    { kind: 'dns', name: '*.example.com' },
    { kind: 'dns', name: 'a..example' },
    { kind: 'dns', name: '-a.example' },
    { kind: 'dns', name: `${'a'.repeat(64)}.example` },
    { kind: 'ip', address: 'example.com' },
    { kind: 'ip', address: '256.1.1.1' },
  ])('rejects %j with TG_ERR_BAD_TARGET', (subject) => {
    let caught: unknown;
    try {
      normaliseLeafSubject(subject);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as GatewayError).code).toBe('TG_ERR_BAD_TARGET');
  });
});
