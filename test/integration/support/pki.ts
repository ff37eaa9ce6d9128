import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

/**
 * Test PKI, built independently of the gateway's own minting code so that a bug there cannot
 * hide in the fixtures: node-forge builds and signs, Node generates the keys (forge's own RSA
 * key generation takes seconds).
 */

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

export interface IssueOptions {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly isCa?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Issuer; omitted = self-signed. */
  readonly issuer?: Issued;
}

const HOUR = 3_600_000;

function newKey(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

export function issue(options: IssueOptions): Issued {
  const key = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - HOUR);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 30 * 24 * HOUR);
  const subject = [
    { name: 'commonName', value: options.commonName },
    { name: 'organizationName', value: 'tollgate tests' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(options.issuer ? options.issuer.cert.subject.attributes : subject);
  const extensions: object[] = [];
  if (options.isCa) {
    extensions.push({ name: 'basicConstraints', cA: true, critical: true });
    extensions.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  } else {
    extensions.push({ name: 'basicConstraints', cA: false });
    extensions.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
    extensions.push({ name: 'extKeyUsage', serverAuth: true });
    const altNames = [...(options.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))];
    if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  }
  extensions.push({ name: 'subjectKeyIdentifier' });
  if (options.issuer) {
    const ski = options.issuer.cert.generateSubjectKeyIdentifier().getBytes();
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: ski });
  }
  cert.setExtensions(extensions);
  cert.sign(options.issuer ? options.issuer.key : key.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem, cert, key: key.privateKey };
}

export function fingerprint256(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `tollgate-${prefix}-`));
}

export function writePem(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** Checks a PEM key is usable by Node (guards fixture generation itself). */
export function assertKeyLoads(pem: string): void {
  createPrivateKey(pem);
}
