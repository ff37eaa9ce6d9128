import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { GatewayError } from '../errors/gateway-error';
import type { CertificateAuthority } from './ca';
import { assembleCertificate, buildTbsCertificate, encodePem, fingerprint256, generateSerialNumber, type NameAttribute } from './der';
import type { LeafKey } from './key-pool';

export type LeafSubject = { kind: 'dns'; name: string } | { kind: 'ip'; address: string };

export interface MintedLeaf {
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Upper-case hex, as `X509Certificate.serialNumber` prints it. */
  readonly serialHex: string;
  readonly fingerprint256: string;
}

export interface MintOptions {
  readonly now?: Date;
  readonly validityMs: number;
}

/**
 * Upper bound on leaf validity. The CA/Browser Forum is shrinking the public maximum to 47 days
 * (ballot SC-081); minted leaves are re-minted long before they expire, so they never need to
 * come near it, and a client that enforces the limit on private CAs keeps working.
 */
export const MAX_LEAF_VALIDITY_MS = 47 * 24 * 3600_000;

/** Clock skew allowance: clients whose clock is a little behind still accept a fresh leaf. */
const BACKDATE_MS = 3600_000;

/** RFC 5280 Appendix A ub-common-name: a CN longer than this is invalid, so it is left out. */
const MAX_COMMON_NAME_LENGTH = 64;

const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function badTarget(what: string, problem: string): GatewayError {
  // The text comes from a client: quoted and cut short so it cannot forge or flood a log line.
  return new GatewayError('TG_ERR_BAD_TARGET', 'tls-client', `${JSON.stringify(what.slice(0, 100))} ${problem}`);
}

/**
 * The canonical form of a leaf subject, which is also what the certificate says: DNS names
 * lower-cased, without the trailing dot, internationalised names as A-labels (dNSName is an
 * IA5String, RFC 5280 section 4.2.1.6); IP addresses in their canonical text form without a zone.
 * An address given as a DNS name becomes an IP subject, because clients match IP literals only
 * against iPAddress entries.
 */
export function normaliseLeafSubject(subject: LeafSubject): LeafSubject {
  if (subject.kind === 'ip') {
    const address = subject.address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
    if (isIP(address) === 0) throw badTarget(subject.address, 'is not an IP address');
    const parsed = ipaddr.parse(address);
    // RFC 5952 text for IPv6, so every spelling of one address shares a cache entry. An
    // IPv4-mapped IPv6 address stays IPv6: the client matches the 16-octet form it dialled.
    return { kind: 'ip', address: parsed.kind() === 'ipv6' ? (parsed as ipaddr.IPv6).toRFC5952String() : parsed.toString() };
  }
  let name = subject.name.toLowerCase().replace(/\.$/, '');
  if (isIP(name.replace(/^\[(.*)\]$/, '$1')) !== 0) return normaliseLeafSubject({ kind: 'ip', address: name });
  if (/[^\x00-\x7f]/.test(name)) name = domainToASCII(name);
  if (name.length === 0 || name.length > 253 || !name.split('.').every((label) => DNS_LABEL.test(label))) {
    throw badTarget(subject.name, 'is not a valid DNS name for a certificate');
  }
  return { kind: 'dns', name };
}

/** A cache key for a subject; call on a normalised subject. */
export function leafSubjectKey(subject: LeafSubject): string {
  return subject.kind === 'dns' ? `dns:${subject.name}` : `ip:${subject.address}`;
}

function floorToSecond(ms: number): Date {
  // X.509 times have whole seconds; flooring keeps the returned dates equal to the certificate's.
  return new Date(Math.floor(ms / 1000) * 1000);
}

/**
 * Builds and signs one leaf for `subject` with the CA's key, using a pooled leaf key. Only a
 * signature is spent per host (sub-millisecond with an ECDSA CA), never a key generation.
 *
 * Profile (what `openssl verify -x509_strict`, browsers and SChannel require or expect):
 * - issuer: the CA's subject Name copied byte for byte (RFC 5280 section 7.1 name chaining);
 * - subjectAltName always, dNSName or iPAddress (4 or 16 octets); clients ignore the CN;
 * - basicConstraints CA:FALSE and keyUsage digitalSignature critical, plus keyEncipherment for
 *   RSA keys (needed by RSA key-exchange suites in TLS 1.2); extendedKeyUsage serverAuth;
 * - authorityKeyIdentifier = the CA's SKI verbatim (RFC 5280 section 4.2.1.1).
 */
export function mintLeaf(ca: CertificateAuthority, key: LeafKey, subject: LeafSubject, opts: MintOptions): MintedLeaf {
  if (!(opts.validityMs > 0) || opts.validityMs > MAX_LEAF_VALIDITY_MS) {
    throw new GatewayError('TG_ERR_CONFIG', 'config', `leaf validity must be between 0 and 47 days, got ${opts.validityMs} ms`);
  }
  if (key.spkiDer.equals(ca.spkiDer)) {
    // Windows SChannel rejects a leaf whose key identifier equals its issuer's.
    throw new GatewayError('TG_ERR_CA', 'tls-client', 'leaf key is the CA key; refusing to mint');
  }
  const normalised = normaliseLeafSubject(subject);
  const nowMs = (opts.now ?? new Date()).getTime();
  const notBefore = floorToSecond(Math.max(nowMs - BACKDATE_MS, ca.notBefore.getTime()));
  const notAfter = floorToSecond(Math.min(nowMs + opts.validityMs, ca.notAfter.getTime()));
  if (notAfter.getTime() <= nowMs) {
    throw new GatewayError('TG_ERR_CA', 'tls-client', `the gateway CA expired on ${ca.notAfter.toISOString()}`);
  }

  const display = normalised.kind === 'dns' ? normalised.name : normalised.address;
  const withCommonName = display.length <= MAX_COMMON_NAME_LENGTH;
  const subjectName: NameAttribute[] = withCommonName ? [{ shortName: 'CN', value: display }] : [];
  const altName = normalised.kind === 'dns' ? { type: 2, value: normalised.name } : { type: 7, value: Buffer.from(ipaddr.parse(normalised.address).toByteArray()).toString('binary') };
  const serial = generateSerialNumber(randomBytes);

  const tbs = buildTbsCertificate({
    serialNumber: serial,
    notBefore,
    notAfter,
    subject: subjectName,
    issuerDer: ca.subjectDer,
    subjectPublicKeyInfoDer: key.spkiDer,
    signatureAlgorithmDer: ca.signer.signatureAlgorithmDer,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      {
        name: 'keyUsage',
        digitalSignature: true,
        keyEncipherment: key.privateKey.asymmetricKeyType === 'rsa',
        critical: true,
      },
      // forge maps the name to id-kp-serverAuth (1.3.6.1.5.5.7.3.1); an OID-string key would be
      // looked up in its two-way OID table and encoded as the name.
      { name: 'extKeyUsage', serverAuth: true },
      // With an empty subject the SAN must be critical (RFC 5280 section 4.2.1.6).
      { name: 'subjectAltName', altNames: [altName], critical: !withCommonName },
      { name: 'authorityKeyIdentifier', keyIdentifier: ca.subjectKeyIdentifier.toString('binary') },
    ],
  });
  const certDer = assembleCertificate(tbs, ca.signer.signatureAlgorithmDer, ca.signer.sign(tbs));
  return {
    certPem: encodePem('CERTIFICATE', certDer),
    certDer,
    notBefore,
    notAfter,
    serialHex: serial.toString('hex').toUpperCase(),
    fingerprint256: fingerprint256(certDer),
  };
}
