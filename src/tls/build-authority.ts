import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSigner } from './ca-signer';
import { caError, type CertificateAuthority, type LoadCaOptions } from './certificate-authority';
import { decodeTime, encodePem, findCommonName, findExtension, nodeBytes, nodeContents, OID, readCertificate, TAG_BIT_STRING, TAG_OCTET_STRING, type DerNode } from './der';

const EXPIRY_WARNING_MS = 30 * 24 * 3600_000;

function parseX509(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw caError(`${what} is not a valid X.509 certificate: ${(err as Error).message}`, err);
  }
}

export function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** keyUsage is a BIT STRING (RFC 5280 section 4.2.1.3); keyCertSign is bit 5. */
function hasKeyCertSign(der: Buffer, value: DerNode): boolean {
  if (value.tag !== TAG_BIT_STRING) return false;
  const bits = nodeContents(der, value);
  return bits.length >= 2 && (bits[1]! & 0x04) !== 0;
}

/**
 * What leaf minting needs from the CA certificate's DER, read byte-exact: validity, keyUsage,
 * the SKI (copied, never recomputed: cert-manager and others use truncated SHA-256 identifiers),
 * and the subject Name as raw DER.
 */
function readCaFields(raw: Buffer): {
  notBefore: Date;
  notAfter: Date;
  keyUsage: DerNode | undefined;
  ski: Buffer | undefined;
  subjectDer: Buffer;
  commonName: string;
} {
  const nodes = readCertificate(raw);
  const skiExtension = findExtension(raw, nodes.extensions, OID.subjectKeyIdentifier);
  const skiValue = skiExtension?.value;
  const ski = skiValue && skiValue.tag === TAG_OCTET_STRING && skiValue.end > skiValue.contentStart ? Buffer.from(nodeContents(raw, skiValue)) : undefined;
  return {
    notBefore: decodeTime(raw, nodes.notBefore),
    notAfter: decodeTime(raw, nodes.notAfter),
    keyUsage: findExtension(raw, nodes.extensions, OID.keyUsage)?.value,
    ski,
    subjectDer: Buffer.from(nodeBytes(raw, nodes.subject)),
    commonName: findCommonName(raw, nodes.subject) ?? '',
  };
}

/**
 * Checks a CA certificate and key and derives everything leaf minting needs. Shared by the load
 * and generate paths so a generated CA passes the same checks as an operator's.
 */
export function buildAuthority(certDer: Buffer, privateKey: KeyObject, chainDers: readonly Buffer[], opts: LoadCaOptions, now: Date): CertificateAuthority {
  const where = opts.certPath;
  const x509 = parseX509(certDer, `gateway CA certificate ${where}`);
  const raw = x509.raw;
  if (!x509.ca) {
    throw caError(`gateway CA certificate ${where} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
  }
  let fields: ReturnType<typeof readCaFields>;
  try {
    fields = readCaFields(raw);
  } catch (err) {
    throw caError(`gateway CA certificate ${where} cannot be parsed: ${(err as Error).message}`, err);
  }
  const { notBefore, notAfter, keyUsage, ski } = fields;
  if (now < notBefore) {
    throw caError(`gateway CA certificate ${where} is not valid before ${notBefore.toISOString()} (check the clock)`);
  }
  if (now > notAfter) {
    throw caError(`gateway CA certificate ${where} expired on ${notAfter.toISOString()}; issue or generate a new CA`);
  }
  if (keyUsage && !hasKeyCertSign(raw, keyUsage)) {
    throw caError(`gateway CA certificate ${where} has a keyUsage extension without keyCertSign; it cannot sign certificates`);
  }
  if (!ski) {
    throw caError(
      `gateway CA certificate ${where} has no subjectKeyIdentifier extension; the gateway cannot issue ` +
        'leaves with a matching authorityKeyIdentifier (RFC 5280 section 4.2.1.1), which strict clients require',
    );
  }
  const spkiDer = spkiOf(x509.publicKey);
  let keySpki: Buffer;
  try {
    keySpki = spkiOf(createPublicKey(privateKey));
  } catch (err) {
    throw caError(`gateway CA key ${opts.keyPath} has no usable public part`, err);
  }
  if (!keySpki.equals(spkiDer)) {
    throw caError(`gateway CA key ${opts.keyPath} does not belong to the certificate ${where}; check that the two files are a pair`);
  }
  const signer = createSigner(privateKey);

  const chainPems: string[] = [];
  // A self-signed root is what clients install; sending it again is waste. An intermediate
  // issuing CA must be sent so clients can build a path to the root they trust.
  const selfSigned = x509.checkIssued(x509) && x509.verify(x509.publicKey);
  if (!selfSigned) chainPems.push(encodePem('CERTIFICATE', raw));
  let previous = x509;
  chainDers.forEach((der, i) => {
    const label = `certificate ${i + 1} of the gateway CA chain file ${opts.chainPath ?? ''}`;
    const cert = parseX509(der, label);
    if (!cert.ca) throw caError(`${label} is not a CA certificate; the chain file holds only intermediates`);
    if (now > new Date(cert.validTo)) opts.logger.warn({ subject: cert.subject, not_after: cert.validTo }, 'gateway CA chain certificate has expired');
    if (!previous.checkIssued(cert)) {
      opts.logger.warn({ subject: cert.subject }, 'gateway CA chain file is not in issuing order; clients may fail to build a path');
    }
    previous = cert;
    chainPems.push(encodePem('CERTIFICATE', cert.raw));
  });

  if (notAfter.getTime() - now.getTime() < EXPIRY_WARNING_MS) {
    opts.logger.warn({ cert_path: where, not_after: notAfter.toISOString() }, 'gateway CA expires within 30 days; leaves will be cut short');
  }

  return Object.freeze({
    certPem: encodePem('CERTIFICATE', raw),
    certDer: Buffer.from(raw),
    chainPems: Object.freeze(chainPems),
    subjectDer: fields.subjectDer,
    subjectKeyIdentifier: ski,
    spkiDer,
    notBefore,
    notAfter,
    fingerprint256: x509.fingerprint256,
    commonName: fields.commonName,
    signer,
  });
}
