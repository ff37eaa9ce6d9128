import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  randomBytes,
  sign as cryptoSign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { open, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { GatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';
import {
  assembleCertificate,
  buildTbsCertificate,
  computeKeyIdentifier,
  decodePemBlocks,
  decodeTime,
  encodeOctetString,
  encodePem,
  findCommonName,
  findExtension,
  generateSerialNumber,
  nodeBytes,
  nodeContents,
  OID,
  readCertificate,
  SIGNATURE_ALGORITHM_DER,
  TAG_BIT_STRING,
  TAG_OCTET_STRING,
  type DerNode,
} from './der';

export type CaKeyType = 'ecdsa-p256' | 'rsa-3072';

/**
 * Signs TBSCertificates with the CA's private key. The key stays in a private field: nothing that
 * holds a signer (or logs the authority) can read or serialise it.
 */
export interface LeafSigner {
  /** AlgorithmIdentifier DER of the signatures this signer makes, for both TBS and outer fields. */
  readonly signatureAlgorithmDer: Buffer;
  sign(tbsDer: Buffer): Buffer;
}

export interface CertificateAuthority {
  /** The issuing CA certificate. */
  readonly certPem: string;
  readonly certDer: Buffer;
  /**
   * Certificates sent to clients after each leaf: the issuing CA itself when it is not
   * self-signed (an enterprise intermediate), then the chain file's certificates; [] for a
   * self-signed root.
   */
  readonly chainPems: readonly string[];
  /** Raw subject Name DER, copied into leaves' issuer byte for byte. */
  readonly subjectDer: Buffer;
  /** Copied from the CA certificate's own SKI extension, never recomputed. */
  readonly subjectKeyIdentifier: Buffer;
  /** The CA's SubjectPublicKeyInfo DER, so leaf keys can be checked to differ from it. */
  readonly spkiDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Like `X509Certificate.fingerprint256`. */
  readonly fingerprint256: string;
  readonly commonName: string;
  readonly signer: LeafSigner;
}

export interface LoadCaOptions {
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM bundle of intermediates sent to clients after the issuing CA. */
  readonly chainPath?: string | null;
  /** Key type of a generated CA; ignored when the files exist. Default ecdsa-p256. */
  readonly keyType?: CaKeyType;
  /** Subject CN of a generated CA. Default `tollgate CA (<hostname>)`. */
  readonly commonName?: string;
  readonly logger: Logger;
  /** Decrypts an encrypted PKCS#8 key; a generated key is written encrypted with it. */
  readonly keyPassphrase?: string;
}

const GENERATED_VALIDITY_MS = 10 * 365 * 24 * 3600_000;
const BACKDATE_MS = 3600_000;
const EXPIRY_WARNING_MS = 30 * 24 * 3600_000;
const CERT_MODE = 0o644;
const KEY_MODE = 0o600;

const generateKeyPairAsync = promisify(generateKeyPair);

function caError(message: string, cause?: unknown): GatewayError {
  return new GatewayError('TG_ERR_CA', 'startup', message, cause === undefined ? undefined : { cause });
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * Loads the gateway CA from `certPath`/`keyPath`, or generates and stores one when neither file
 * exists. Every problem is a TG_ERR_CA at startup with a message that says how to fix it; no
 * message or log line ever carries key material.
 */
export async function loadOrCreateAuthority(
  opts: LoadCaOptions,
): Promise<{ authority: CertificateAuthority; created: boolean }> {
  const [certStat, keyStat] = await Promise.all([statIfExists(opts.certPath), statIfExists(opts.keyPath)]);
  if (!certStat && !keyStat) {
    if (opts.chainPath) {
      // A chain file only makes sense with an enterprise CA, so the paths are probably wrong;
      // generating a fresh CA here would silently replace the one clients trust.
      throw caError(
        `gateway CA: a chain file (${opts.chainPath}) is configured but neither ${opts.certPath} nor ` +
          `${opts.keyPath} exists; check the paths, or remove the chain setting to let the gateway generate its own CA`,
      );
    }
    return { authority: await generateAuthority(opts), created: true };
  }
  if (!certStat || !keyStat) {
    const [present, missing] = certStat ? [opts.certPath, opts.keyPath] : [opts.keyPath, opts.certPath];
    throw caError(
      `gateway CA: ${present} exists but ${missing} does not; both the certificate (${opts.certPath}) ` +
        `and its key (${opts.keyPath}) are needed. Restore the missing file, or remove ${present} ` +
        `to let the gateway generate a new CA (clients must then trust the new one)`,
    );
  }
  // POSIX permission bits; Windows reports synthetic modes, and access there is ACL-based.
  if (process.platform !== 'win32' && (keyStat.mode & 0o077) !== 0) {
    const mode = (keyStat.mode & 0o777).toString(8).padStart(4, '0');
    throw caError(
      `gateway CA key ${opts.keyPath} has mode ${mode}: readable or writable by group or others. ` +
        `Restrict it with: chmod 600 ${opts.keyPath}`,
    );
  }
  const certDer = await readCertificateFile(opts.certPath);
  const privateKey = await readPrivateKey(opts.keyPath, opts.keyPassphrase);
  const chainDers = opts.chainPath ? await readChainFile(opts.chainPath) : [];
  const authority = buildAuthority(certDer, privateKey, chainDers, opts, new Date());
  opts.logger.info(
    {
      certPath: opts.certPath,
      fingerprint256: authority.fingerprint256,
      commonName: authority.commonName,
      notAfter: authority.notAfter.toISOString(),
      chainLength: authority.chainPems.length,
    },
    'loaded gateway CA',
  );
  return { authority, created: false };
}

/** The issuing CA certificate, for clients to install (admin endpoint, CLI export). */
export function exportCaCertificate(authority: CertificateAuthority, format: 'pem' | 'der'): Buffer {
  return format === 'der' ? Buffer.from(authority.certDer) : Buffer.from(authority.certPem, 'ascii');
}

// ---------------------------------------------------------------------------------------------
// Signing

class KeyObjectSigner implements LeafSigner {
  readonly #key: KeyObject;
  readonly #hash: string;
  readonly signatureAlgorithmDer: Buffer;

  constructor(key: KeyObject, hash: string, signatureAlgorithmDer: Buffer) {
    this.#key = key;
    this.#hash = hash;
    this.signatureAlgorithmDer = signatureAlgorithmDer;
  }

  sign(tbsDer: Buffer): Buffer {
    // ECDSA signatures come out as the DER Ecdsa-Sig-Value X.509 wants (dsaEncoding 'der');
    // RSA keys sign with PKCS #1 v1.5 by default, matching sha256WithRSAEncryption.
    return cryptoSign(this.#hash, tbsDer, this.#key);
  }

  toJSON(): string {
    return '[LeafSigner]';
  }
}

/**
 * Picks the signature algorithm for a CA key. The hash follows the curve size (RFC 5480 section
 * 4); RSA uses SHA-256, which every client supports. Other key types (RSA-PSS, EdDSA) are refused:
 * browsers and most TLS stacks do not accept them in certificate chains.
 */
function createSigner(key: KeyObject): LeafSigner {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return new KeyObjectSigner(key, 'sha256', SIGNATURE_ALGORITHM_DER.ecdsaWithSha256);
    if (curve === 'secp384r1' || curve === 'P-384') return new KeyObjectSigner(key, 'sha384', SIGNATURE_ALGORITHM_DER.ecdsaWithSha384);
    if (curve === 'secp521r1' || curve === 'P-521') return new KeyObjectSigner(key, 'sha512', SIGNATURE_ALGORITHM_DER.ecdsaWithSha512);
    throw caError(`gateway CA key uses the unsupported elliptic curve ${curve ?? 'unknown'}; use P-256, P-384 or P-521`);
  }
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw caError(`gateway CA key is RSA-${bits}; at least 2048 bits are required`);
    return new KeyObjectSigner(key, 'sha256', SIGNATURE_ALGORITHM_DER.sha256WithRsaEncryption);
  }
  throw caError(`gateway CA key type ${type ?? 'unknown'} is not supported; use an ECDSA (P-256/P-384/P-521) or RSA key`);
}

// ---------------------------------------------------------------------------------------------
// Loading

async function statIfExists(path: string): Promise<{ mode: number } | undefined> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw caError(`gateway CA: ${path} is not a regular file`);
    return st;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    if (err instanceof GatewayError) throw err;
    throw caError(`gateway CA: cannot access ${path}: ${(err as Error).message}`, err);
  }
}

async function readFileOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw caError(`gateway CA: cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

function looksLikePem(data: Buffer): boolean {
  return data.includes('-----BEGIN ');
}

async function readCertificateFile(path: string): Promise<Buffer> {
  const data = await readFileOrFail(path, 'certificate');
  if (!looksLikePem(data)) return data; // DER; parsed and checked by buildAuthority
  const blocks = decodePemBlocks(data.toString('latin1'), 'CERTIFICATE');
  if (blocks.length === 0) throw caError(`gateway CA certificate ${path} contains no PEM CERTIFICATE block`);
  if (blocks.length > 1) {
    throw caError(
      `gateway CA certificate ${path} holds ${blocks.length} certificates; put only the issuing CA ` +
        'there and its intermediates in the chain file',
    );
  }
  return blocks[0]!;
}

async function readPrivateKey(path: string, passphrase: string | undefined): Promise<KeyObject> {
  const data = await readFileOrFail(path, 'key');
  try {
    return looksLikePem(data)
      ? createPrivateKey({ key: data, format: 'pem', ...(passphrase !== undefined ? { passphrase } : {}) })
      : createPrivateKey({ key: data, format: 'der', type: 'pkcs8' });
  } catch (err) {
    // OpenSSL's reason strings ("bad decrypt", "unsupported") never quote the key.
    const reason = (err as Error).message;
    const encrypted = data.includes('ENCRYPTED');
    const hint = !encrypted
      ? ''
      : passphrase === undefined
        ? ' The key is encrypted: configure its passphrase.'
        : ' The key is encrypted: check the configured passphrase.';
    throw caError(`gateway CA key ${path} cannot be loaded (${reason}).${hint}`, err);
  }
}

async function readChainFile(path: string): Promise<Buffer[]> {
  const data = await readFileOrFail(path, 'chain file');
  const blocks = decodePemBlocks(data.toString('latin1'), 'CERTIFICATE');
  if (blocks.length === 0) throw caError(`gateway CA chain file ${path} contains no PEM CERTIFICATE block`);
  return blocks;
}

function parseX509(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw caError(`${what} is not a valid X.509 certificate: ${(err as Error).message}`, err);
  }
}

function spkiOf(key: KeyObject): Buffer {
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
  const ski = skiValue && skiValue.tag === TAG_OCTET_STRING && skiValue.end > skiValue.contentStart
    ? Buffer.from(nodeContents(raw, skiValue))
    : undefined;
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
function buildAuthority(
  certDer: Buffer,
  privateKey: KeyObject,
  chainDers: readonly Buffer[],
  opts: LoadCaOptions,
  now: Date,
): CertificateAuthority {
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
    if (now > new Date(cert.validTo)) opts.logger.warn({ subject: cert.subject, validTo: cert.validTo }, 'gateway CA chain certificate has expired');
    if (!previous.checkIssued(cert)) {
      opts.logger.warn({ subject: cert.subject }, 'gateway CA chain file is not in issuing order; clients may fail to build a path');
    }
    previous = cert;
    chainPems.push(encodePem('CERTIFICATE', cert.raw));
  });

  if (notAfter.getTime() - now.getTime() < EXPIRY_WARNING_MS) {
    opts.logger.warn({ certPath: where, notAfter: notAfter.toISOString() }, 'gateway CA expires within 30 days; leaves will be cut short');
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

// ---------------------------------------------------------------------------------------------
// Generation

async function generateKey(keyType: CaKeyType): Promise<KeyObject> {
  const { privateKey } =
    keyType === 'rsa-3072'
      ? await generateKeyPairAsync('rsa', { modulusLength: 3072 })
      : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return privateKey;
}

async function generateAuthority(opts: LoadCaOptions): Promise<CertificateAuthority> {
  const keyType = opts.keyType ?? 'ecdsa-p256';
  opts.logger.info({ certPath: opts.certPath, keyType }, 'generating a new gateway CA, this happens once');
  let privateKey: KeyObject;
  try {
    privateKey = await generateKey(keyType);
  } catch (err) {
    throw caError(`gateway CA: generating a ${keyType} key failed: ${(err as Error).message}`, err);
  }
  const now = new Date();
  const certDer = createSelfSignedCaCertificate(privateKey, opts.commonName ?? `tollgate CA (${hostname()})`, now);
  const keyPem = privateKey.export(
    opts.keyPassphrase !== undefined
      ? { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: opts.keyPassphrase }
      : { type: 'pkcs8', format: 'pem' },
  );
  try {
    await Promise.all([mkdir(dirname(opts.certPath), { recursive: true }), mkdir(dirname(opts.keyPath), { recursive: true })]);
    // The key goes first: a crash between the two renames leaves a key without a certificate,
    // which the next start reports, rather than a certificate whose key is lost.
    await writeFileAtomically(opts.keyPath, keyPem, KEY_MODE);
    await writeFileAtomically(opts.certPath, encodePem('CERTIFICATE', certDer), CERT_MODE);
  } catch (err) {
    throw caError(`gateway CA: cannot store the generated CA at ${opts.certPath} / ${opts.keyPath}: ${(err as Error).message}`, err);
  }
  const authority = buildAuthority(certDer, privateKey, [], opts, now);
  opts.logger.info(
    { certPath: opts.certPath, keyPath: opts.keyPath, fingerprint256: authority.fingerprint256, notAfter: authority.notAfter.toISOString() },
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

/**
 * Writes through a temporary file in the same directory and renames it into place, so a crash
 * never leaves a truncated file (least of all a half key). The mode is given at open, which the
 * umask can only narrow, and then set explicitly so the result is exact whatever the umask.
 */
async function writeFileAtomically(path: string, data: string | Buffer, mode: number): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    try {
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  // Persist the rename itself; not every platform lets a directory be fsynced, which is fine.
  try {
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch {
    /* best effort */
  }
}
