import { createHash } from 'node:crypto';
import forge from 'node-forge';

/**
 * DER building blocks for the certificates the gateway issues and the CA certificates it loads.
 *
 * node-forge builds the variable parts of a TBSCertificate (times, names, extensions), but it
 * only knows RSA keys and re-encodes whatever it parses. So the parts that must be exact are
 * spliced in here as raw bytes instead: the issuer Name copied from the CA certificate (a
 * re-encoded name could change string types and break chain building), the SubjectPublicKeyInfo
 * exported by Node (EC or RSA), and the AlgorithmIdentifier of the signing key. A small DER
 * reader walks loaded certificates because forge cannot parse EC certificates and keeps no
 * byte offsets.
 */

// Universal tags (X.690 section 8); constructed forms carry the 0x20 bit.
const TAG_BOOLEAN = 0x01;
export const TAG_BIT_STRING = 0x03;
export const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_T61_STRING = 0x14;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_UNIVERSAL_STRING = 0x1c;
const TAG_BMP_STRING = 0x1e;
const TAG_SEQUENCE = 0x30;
/** `[3] EXPLICIT Extensions` inside a TBSCertificate (RFC 5280 section 4.1). */
const TAG_TBS_EXTENSIONS = 0xa3;
/** `[0] EXPLICIT Version` inside a TBSCertificate. */
const TAG_TBS_VERSION = 0xa0;

/** OID contents octets (without tag and length) of the object identifiers this module compares. */
export const OID = {
  subjectKeyIdentifier: Buffer.from('551d0e', 'hex'), // 2.5.29.14
  keyUsage: Buffer.from('551d0f', 'hex'), // 2.5.29.15
  commonName: Buffer.from('550403', 'hex'), // 2.5.4.3
} as const;

/**
 * AlgorithmIdentifier DER of the signature algorithms the gateway signs with. RFC 5758 section
 * 3.2: the ECDSA identifiers have absent parameters; RFC 4055 section 5: sha256WithRSAEncryption
 * has NULL parameters (omitting them is rejected by some verifiers).
 */
export const SIGNATURE_ALGORITHM_DER = {
  ecdsaWithSha256: Buffer.from('300a06082a8648ce3d040302', 'hex'),
  ecdsaWithSha384: Buffer.from('300a06082a8648ce3d040303', 'hex'),
  ecdsaWithSha512: Buffer.from('300a06082a8648ce3d040304', 'hex'),
  sha256WithRsaEncryption: Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
} as const;

// ---------------------------------------------------------------------------------------------
// Encoding

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with a single-byte tag; `contents` are concatenated. */
function encodeTlv(tag: number, ...contents: readonly Buffer[]): Buffer {
  const body = contents.length === 1 ? contents[0]! : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

function encodeSequence(...elements: readonly Buffer[]): Buffer {
  return encodeTlv(TAG_SEQUENCE, ...elements);
}

/** A BIT STRING of whole octets (no unused bits), as signatures and key identifiers are. */
function encodeBitString(octets: Buffer): Buffer {
  return encodeTlv(TAG_BIT_STRING, Buffer.from([0]), octets);
}

export function encodeOctetString(octets: Buffer): Buffer {
  return encodeTlv(TAG_OCTET_STRING, octets);
}

/**
 * Random certificate serial number of exactly 16 octets: the first octet is 0x40-0x7f, so the
 * INTEGER is positive and non-zero (RFC 5280 section 4.1.2.2) and already in the minimal form DER
 * requires (OpenSSL rejects padded INTEGERs), leaving 126 random bits (the CA/B Forum asks for at
 * least 64). Returns the INTEGER contents, which `X509Certificate.serialNumber` prints in hex.
 */
export function generateSerialNumber(random: (size: number) => Buffer): Buffer {
  const bytes = random(16);
  bytes[0] = 0x40 | (bytes[0]! & 0x3f);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Position of one TLV inside a buffer: `start` is the tag octet, `contentStart` its value. */
export interface DerNode {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

class DerError extends Error {
  override readonly name = 'DerError';
}

/** Reads the TLV at `offset`; only definite lengths and single-octet tags, as DER requires. */
function readNode(der: Buffer, offset: number, limit: number = der.length): DerNode {
  if (offset + 2 > limit) throw new DerError(`truncated DER at offset ${offset}`);
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-octet tag at offset ${offset}`);
  const first = der[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new DerError(`unsupported length form at offset ${offset}`);
    if (offset + 2 + count > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[offset + 2 + i]!;
    contentStart = offset + 2 + count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError(`DER element at offset ${offset} overruns its container`);
  return { tag, start: offset, contentStart, end };
}

/** The elements inside a constructed node (SEQUENCE, SET, explicit tag). */
function readChildren(der: Buffer, node: DerNode): DerNode[] {
  const children: DerNode[] = [];
  for (let offset = node.contentStart; offset < node.end; ) {
    const child = readNode(der, offset, node.end);
    children.push(child);
    offset = child.end;
  }
  return children;
}

export function nodeBytes(der: Buffer, node: DerNode): Buffer {
  return der.subarray(node.start, node.end);
}

export function nodeContents(der: Buffer, node: DerNode): Buffer {
  return der.subarray(node.contentStart, node.end);
}

/** Parses a UTCTime or GeneralizedTime in the `Z` forms RFC 5280 section 4.1.2.5 allows. */
export function decodeTime(der: Buffer, node: DerNode): Date {
  const text = nodeContents(der, node).toString('latin1');
  const match =
    node.tag === TAG_UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : node.tag === TAG_GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text)
        : null;
  if (!match) throw new DerError(`unsupported time encoding "${text}"`);
  const [, y, mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  // UTCTime years 50-99 are 1950-1999 (RFC 5280 section 4.1.2.5.1).
  const year = node.tag === TAG_UTC_TIME ? (y >= 50 ? 1900 + y : 2000 + y) : y;
  return new Date(Date.UTC(year, mo - 1, d, h, mi, s));
}

/** Decodes a directory string (the string types RFC 5280 section 4.1.2.4 allows) for display. */
function decodeDirectoryString(der: Buffer, node: DerNode): string {
  const contents = nodeContents(der, node);
  switch (node.tag) {
    case TAG_BMP_STRING:
      return Buffer.from(contents).swap16().toString('utf16le');
    case TAG_UNIVERSAL_STRING: {
      const chars: string[] = [];
      for (let i = 0; i + 4 <= contents.length; i += 4) chars.push(String.fromCodePoint(contents.readUInt32BE(i)));
      return chars.join('');
    }
    case TAG_T61_STRING:
      return contents.toString('latin1');
    default:
      return contents.toString('utf8');
  }
}

/** The parts of a Certificate (RFC 5280 section 4.1) this gateway reads, located by position. */
interface CertificateNodes {
  readonly tbs: DerNode;
  readonly issuer: DerNode;
  readonly notBefore: DerNode;
  readonly notAfter: DerNode;
  readonly subject: DerNode;
  readonly subjectPublicKeyInfo: DerNode;
  /** The `Extension` SEQUENCEs, empty for a v1 certificate. */
  readonly extensions: readonly DerNode[];
}

export function readCertificate(der: Buffer): CertificateNodes {
  const certificate = readNode(der, 0);
  if (certificate.tag !== TAG_SEQUENCE || certificate.end !== der.length) throw new DerError('not a DER certificate');
  const [tbs] = readChildren(der, certificate);
  if (!tbs || tbs.tag !== TAG_SEQUENCE) throw new DerError('certificate has no TBSCertificate');
  const fields = readChildren(der, tbs);
  // version is `[0] EXPLICIT ... DEFAULT v1`, so it is absent from v1 certificates.
  const rest = fields[0]?.tag === TAG_TBS_VERSION ? fields.slice(1) : fields;
  const [, , issuer, validity, subject, subjectPublicKeyInfo, ...optional] = rest;
  if (!issuer || !validity || !subject || !subjectPublicKeyInfo) throw new DerError('TBSCertificate is incomplete');
  const [notBefore, notAfter] = readChildren(der, validity);
  if (!notBefore || !notAfter) throw new DerError('certificate validity is incomplete');
  const extensionsWrapper = optional.find((n) => n.tag === TAG_TBS_EXTENSIONS);
  let extensions: DerNode[] = [];
  if (extensionsWrapper) {
    const [list] = readChildren(der, extensionsWrapper);
    if (!list || list.tag !== TAG_SEQUENCE) throw new DerError('malformed extensions');
    extensions = readChildren(der, list);
  }
  return { tbs, issuer, notBefore, notAfter, subject, subjectPublicKeyInfo, extensions };
}

/** An extension's `extnValue` contents and critical flag, or undefined when absent. */
export function findExtension(der: Buffer, extensions: readonly DerNode[], oid: Buffer): { readonly critical: boolean; readonly value: DerNode } | undefined {
  for (const extension of extensions) {
    const parts = readChildren(der, extension);
    const [id] = parts;
    if (!id || id.tag !== TAG_OID || !nodeContents(der, id).equals(oid)) continue;
    const critical = parts.length === 3 && parts[1]!.tag === TAG_BOOLEAN && der[parts[1]!.contentStart] !== 0;
    const octets = parts[parts.length - 1];
    if (!octets || octets.tag !== TAG_OCTET_STRING) throw new DerError('malformed extension');
    return { critical, value: readNode(der, octets.contentStart, octets.end) };
  }
  return undefined;
}

/** The first commonName attribute of a Name, or undefined. */
export function findCommonName(der: Buffer, name: DerNode): string | undefined {
  for (const rdn of readChildren(der, name)) {
    for (const attribute of readChildren(der, rdn)) {
      const [type, value] = readChildren(der, attribute);
      if (type && value && nodeContents(der, type).equals(OID.commonName)) return decodeDirectoryString(der, value);
    }
  }
  return undefined;
}

/** The subjectPublicKey BIT STRING contents (after the unused-bits octet) of an SPKI. */
export function subjectPublicKeyBits(spkiDer: Buffer): Buffer {
  const spki = readNode(spkiDer, 0);
  const [, bits] = readChildren(spkiDer, spki);
  if (!bits || bits.tag !== TAG_BIT_STRING) throw new DerError('malformed SubjectPublicKeyInfo');
  return spkiDer.subarray(bits.contentStart + 1, bits.end);
}

/**
 * RFC 5280 section 4.2.1.2 method (1): the SHA-1 of the subjectPublicKey BIT STRING value
 * (excluding tag, length and unused-bits octet). Used only for the CA the gateway generates;
 * a loaded CA's identifier is always copied, never recomputed.
 */
export function computeKeyIdentifier(spkiDer: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spkiDer)).digest();
}

// ---------------------------------------------------------------------------------------------
// PEM

export function encodePem(label: string, der: Buffer): string {
  const base64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The DER of every `label` block in a PEM bundle, in order; text between blocks is ignored. */
export function decodePemBlocks(text: string, label: string): Buffer[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`, 'g');
  return [...text.matchAll(pattern)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

// ---------------------------------------------------------------------------------------------
// TBSCertificate assembly with forge

/**
 * `pki.getTBSCertificate` exists at runtime (node-forge lib/x509.js) but is missing from
 * @types/node-forge.
 */
type GetTbsCertificate = (cert: forge.pki.Certificate) => forge.asn1.Asn1;
const getTbsCertificate: GetTbsCertificate = (() => {
  const fn = (forge.pki as unknown as { getTBSCertificate?: unknown }).getTBSCertificate;
  if (typeof fn !== 'function') throw new Error('node-forge no longer exports pki.getTBSCertificate');
  return fn as GetTbsCertificate;
})();

/**
 * forge needs *a* public key and signature algorithm to build the TBSCertificate; both are
 * replaced by the real SPKI and AlgorithmIdentifier, so a fixed, tiny RSA key will do.
 */
const PLACEHOLDER_PUBLIC_KEY = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger('c5', 16), new forge.jsbn.BigInteger('10001', 16));
const PLACEHOLDER_SIGNATURE_OID = '1.2.840.113549.1.1.11';

/** forge's `_dnToAsn1` reads `valueTagClass` as a universal *type*; the typings call it a class. */
const UTF8_VALUE_TAG = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;

export interface NameAttribute {
  readonly shortName: 'CN' | 'O';
  readonly value: string;
}

export interface TbsCertificateInput {
  readonly serialNumber: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Encoded as UTF8String, as RFC 5280 section 4.1.2.6 asks of new certificates. */
  readonly subject: readonly NameAttribute[];
  /** Raw Name DER, copied verbatim; 'subject' for a self-signed certificate. */
  readonly issuerDer: Buffer | 'subject';
  readonly subjectPublicKeyInfoDer: Buffer;
  readonly signatureAlgorithmDer: Buffer;
  /** Extensions in node-forge's `setExtensions` form. */
  readonly extensions: readonly object[];
}

function forgeToBuffer(node: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(node).getBytes(), 'binary');
}

/**
 * Builds the TBSCertificate DER. forge's TBS SEQUENCE (lib/x509.js getTBSCertificate) is
 * `[0] version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo,
 * [3] extensions` when no unique identifiers are set; the layout is checked, not assumed, so a
 * forge upgrade that changes it fails loudly instead of producing a wrong certificate.
 */
export function buildTbsCertificate(input: TbsCertificateInput): Buffer {
  const cert = forge.pki.createCertificate();
  cert.version = 2; // v3
  cert.serialNumber = input.serialNumber.toString('hex');
  cert.validity.notBefore = input.notBefore;
  cert.validity.notAfter = input.notAfter;
  cert.setSubject(input.subject.map((a) => ({ shortName: a.shortName, value: a.value, valueTagClass: UTF8_VALUE_TAG })));
  cert.publicKey = PLACEHOLDER_PUBLIC_KEY;
  cert.siginfo.algorithmOid = PLACEHOLDER_SIGNATURE_OID;
  cert.setExtensions([...input.extensions]);
  const tbs = getTbsCertificate(cert);
  const fields = tbs.value;
  if (!Array.isArray(fields) || fields.length !== 8) throw new Error('unexpected node-forge TBSCertificate layout');
  const [version, serial, , , validity, subject, , extensions] = fields as [
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
    forge.asn1.Asn1,
  ];
  const { Class, Type } = forge.asn1;
  if (
    version.tagClass !== Class.CONTEXT_SPECIFIC ||
    (version.type as number) !== 0 ||
    serial.type !== Type.INTEGER ||
    validity.type !== Type.SEQUENCE ||
    subject.type !== Type.SEQUENCE ||
    extensions.tagClass !== Class.CONTEXT_SPECIFIC ||
    (extensions.type as number) !== 3
  ) {
    throw new Error('unexpected node-forge TBSCertificate layout');
  }
  const subjectDer = forgeToBuffer(subject);
  return encodeSequence(
    forgeToBuffer(version),
    forgeToBuffer(serial),
    input.signatureAlgorithmDer,
    input.issuerDer === 'subject' ? subjectDer : input.issuerDer,
    forgeToBuffer(validity),
    subjectDer,
    input.subjectPublicKeyInfoDer,
    forgeToBuffer(extensions),
  );
}

/** `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }`. */
export function assembleCertificate(tbsDer: Buffer, signatureAlgorithmDer: Buffer, signature: Buffer): Buffer {
  return encodeSequence(tbsDer, signatureAlgorithmDer, encodeBitString(signature));
}

/** Colon-separated upper-case SHA-256 of the DER, the format of `X509Certificate.fingerprint256`. */
export function fingerprint256(der: Buffer): string {
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return hex.replace(/(..)(?!$)/g, '$1:');
}
