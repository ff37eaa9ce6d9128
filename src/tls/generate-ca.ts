import { createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { buildAuthority, spkiOf } from './build-authority';
import { createSigner } from './ca-signer';
import { caError, type CaKeyType, type CertificateAuthority, type LoadCaOptions } from './certificate-authority';
import { assembleCertificate, buildTbsCertificate, computeKeyIdentifier, encodeOctetString, encodePem, generateSerialNumber } from './der';
import { writeFileAtomically } from '../sources/atomic-write';

const GENERATED_VALIDITY_MS = 10 * 365 * 24 * 3600_000;
const BACKDATE_MS = 3600_000;
const CERT_MODE = 0o644;
const KEY_MODE = 0o600;

const generateKeyPairAsync = promisify(generateKeyPair);

async function generateKey(keyType: CaKeyType): Promise<KeyObject> {
  const { privateKey } = keyType === 'rsa-3072' ? await generateKeyPairAsync('rsa', { modulusLength: 3072 }) : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return privateKey;
}

/**
 * Generates a CA on first start and stores it; it then passes the same checks as an operator's
 * (`buildAuthority`).
 */
export async function generateAuthority(opts: LoadCaOptions): Promise<CertificateAuthority> {
  const keyType = opts.keyType ?? 'ecdsa-p256';
  opts.logger.info({ cert_path: opts.certPath, key_type: keyType }, 'generating a new gateway CA, this happens once');
  let privateKey: KeyObject;
  try {
    privateKey = await generateKey(keyType);
  } catch (err) {
    throw caError(`gateway CA: generating a ${keyType} key failed: ${(err as Error).message}`, err);
  }
  const now = new Date();
  const certDer = createSelfSignedCaCertificate(privateKey, opts.commonName ?? `tollgate CA (${hostname()})`, now);
  const keyPem = privateKey.export(opts.keyPassphrase !== undefined ? { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: opts.keyPassphrase } : { type: 'pkcs8', format: 'pem' });
  try {
    await Promise.all([mkdir(dirname(opts.certPath), { recursive: true }), mkdir(dirname(opts.keyPath), { recursive: true })]);
    // The key goes first: a crash between the two renames leaves a key without a certificate,
    // which the next start reports, rather than a certificate whose key is lost.
    writeFileAtomically(opts.keyPath, keyPem, KEY_MODE);
    writeFileAtomically(opts.certPath, encodePem('CERTIFICATE', certDer), CERT_MODE);
  } catch (err) {
    throw caError(`gateway CA: cannot store the generated CA at ${opts.certPath} / ${opts.keyPath}: ${(err as Error).message}`, err);
  }
  const authority = buildAuthority(certDer, privateKey, [], opts, now);
  opts.logger.info(
    { cert_path: opts.certPath, key_path: opts.keyPath, fingerprint256: authority.fingerprint256, not_after: authority.notAfter.toISOString() },
    'generated gateway CA; clients must install its certificate',
  );
  return authority;
}

/**
 * The generated CA: self-signed, 10 years backdated an hour (client clocks drift), random
 * positive serial. basicConstraints CA:TRUE with pathLen 0 because it only ever issues leaves
 * (RFC 5280 section 4.2.1.9), keyUsage keyCertSign+cRLSign (+digitalSignature, harmless, and
 * expected by some OCSP tooling), SKI by RFC 5280 section 4.2.1.2 method 1 and AKI = SKI, which
 * `openssl verify -x509_strict` requires of a CA.
 */
function createSelfSignedCaCertificate(privateKey: KeyObject, commonName: string, now: Date): Buffer {
  const signer = createSigner(privateKey);
  const spkiDer = spkiOf(createPublicKey(privateKey));
  const keyIdentifier = computeKeyIdentifier(spkiDer);
  const notBefore = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000);
  const tbs = buildTbsCertificate({
    serialNumber: generateSerialNumber(randomBytes),
    notBefore,
    notAfter: new Date(notBefore.getTime() + GENERATED_VALIDITY_MS),
    subject: [
      { shortName: 'CN', value: commonName },
      { shortName: 'O', value: 'tollgate' },
    ],
    issuerDer: 'subject',
    subjectPublicKeyInfoDer: spkiDer,
    signatureAlgorithmDer: signer.signatureAlgorithmDer,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      { name: 'subjectKeyIdentifier', value: encodeOctetString(keyIdentifier).toString('binary') },
      { name: 'authorityKeyIdentifier', keyIdentifier: keyIdentifier.toString('binary') },
    ],
  });
  return assembleCertificate(tbs, signer.signatureAlgorithmDer, signer.sign(tbs));
}
