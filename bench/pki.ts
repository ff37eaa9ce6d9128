import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/**
 * The bench PKI: a CA that signs the local origin's certificate. Every proxy under test is told
 * to verify the origin against this CA, so none wins by skipping verification. Built with
 * node-forge (keys from Node's crypto: forge's own RSA key generation takes seconds).
 */
export interface BenchPki {
  readonly caPem: string;
  /** CA certificate and key in one PEM (what Squid's tls-cert wants). */
  readonly caKeyPem: string;
  readonly originCertPem: string;
  readonly originKeyPem: string;
}

const HOUR = 3_600_000;

function rsaKey(): { forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

function baseCert(publicKey: forge.pki.rsa.PublicKey, commonName: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - HOUR);
  cert.validity.notAfter = new Date(Date.now() + 7 * 24 * HOUR);
  cert.setSubject([
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'tollgate bench' },
  ]);
  return cert;
}

/** `names` become DNS SANs of the origin certificate (wildcards allowed); 127.0.0.1 and ::1 are added. */
export function createBenchPki(names: readonly string[]): BenchPki {
  const caKey = rsaKey();
  const ca = baseCert(caKey.publicKey, 'tollgate bench CA');
  ca.setIssuer(ca.subject.attributes);
  ca.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }, { name: 'subjectKeyIdentifier' }]);
  ca.sign(caKey.forgeKey, forge.md.sha256.create());

  const leafKey = rsaKey();
  const leaf = baseCert(leafKey.publicKey, names[0] ?? 'localhost');
  leaf.setIssuer(ca.subject.attributes);
  leaf.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [...names.map((value) => ({ type: 2, value })), { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  leaf.sign(caKey.forgeKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(ca);
  return { caPem, caKeyPem: caPem + caKey.pem, originCertPem: forge.pki.certificateToPem(leaf), originKeyPem: leafKey.pem };
}
