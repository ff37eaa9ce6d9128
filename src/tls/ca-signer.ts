import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { caError, type LeafSigner } from './certificate-authority';
import { SIGNATURE_ALGORITHM_DER } from './der';

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
export function createSigner(key: KeyObject): LeafSigner {
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
