import { GatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';

/**
 * The gateway CA as leaf minting sees it, the options that locate it, and the one error every
 * CA problem is reported as.
 */

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

export function caError(message: string, cause?: unknown): GatewayError {
  return new GatewayError('TG_ERR_CA', 'startup', message, cause === undefined ? undefined : { cause });
}
