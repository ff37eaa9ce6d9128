import { GatewayError } from '../errors/gateway-error';

/**
 * The one mapping from what sockets, TLS and Node's HTTP parsers report about an origin to the
 * gateway's error catalogue, for every outbound path: connects, TLS handshakes and exchanges
 * (Node's HTTP/2 client, and undici for HTTP/1.1).
 */

/** Why an origin certificate failed, in words a person understands, keyed by OpenSSL's code. */
const CERT_FAILURES: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown issuer (the chain ends at an untrusted root)',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown issuer',
  // OpenSSL reports both a missing intermediate and an unknown CA this way when the origin
  // sends only its leaf; the common cause on otherwise good sites is the missing intermediate.
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'incomplete chain or unknown issuer (no trusted issuer for the certificate the origin sent)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'incomplete chain (the origin did not send its intermediate certificate)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'hostname mismatch',
  CERT_SIGNATURE_FAILURE: 'bad signature',
  CERT_REVOKED: 'revoked',
  INVALID_CA: 'invalid CA certificate in chain',
  CERT_UNTRUSTED: 'untrusted',
  CERT_REJECTED: 'rejected',
  INVALID_PURPOSE: 'not valid for TLS servers',
  PATH_LENGTH_EXCEEDED: 'path length exceeded',
  // Below security level 2 (see ORIGIN_CIPHERS). Node 20 has no names for these and reports
  // them as UNSPECIFIED (see UNNAMED_CERT_FAILURES); the names are OpenSSL's, in case it does.
  EE_KEY_TOO_SMALL: "weak key (the origin's certificate key is shorter than 2048-bit RSA)",
  CA_KEY_TOO_SMALL: 'weak key (an issuing CA certificate has a key shorter than 2048-bit RSA)',
  CA_MD_TOO_WEAK: 'weak signature (a certificate in the chain is signed with SHA-1 or MD5)',
};

/**
 * Node names only some of OpenSSL's verification errors; the others, including the security-
 * level checks, arrive with code UNSPECIFIED and OpenSSL's X509_verify_cert_error_string()
 * text, which is the same in OpenSSL 1.1 and 3.x. Measured on Node 20 / OpenSSL 3.0: an
 * RSA-1024 leaf, an RSA-1024 CA and a SHA-1-signed leaf all reported this way (the SHA-1 leaf
 * even at level 1, where it used to surface as "cannot reach ...: UNSPECIFIED").
 */
const UNNAMED_CERT_FAILURES: Readonly<Record<string, string>> = {
  'EE certificate key too weak': 'EE_KEY_TOO_SMALL',
  'CA certificate key too weak': 'CA_KEY_TOO_SMALL',
  'CA signature digest algorithm too weak': 'CA_MD_TOO_WEAK',
};

/**
 * Maps an error from an origin connection or exchange to the catalogue. `where` names the origin
 * or the address being dialled. A GatewayError (or one carried as `cause`) is already mapped.
 */
export function classifyOriginError(err: NodeJS.ErrnoException, where: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof GatewayError) return cause;
  const code = err.code === 'UNSPECIFIED' ? (UNNAMED_CERT_FAILURES[err.message] ?? 'UNSPECIFIED') : (err.code ?? '');
  const certFailure = CERT_FAILURES[code];
  if (certFailure) {
    return new GatewayError('TG_ERR_UPSTREAM_CERT', 'tls-origin', `the certificate of ${where} failed verification: ${certFailure} (${code})`, { cause: err });
  }
  // Any other unnamed verification failure is still a certificate failure, never "unreachable".
  if (code === 'UNSPECIFIED') {
    return new GatewayError('TG_ERR_UPSTREAM_CERT', 'tls-origin', `the certificate of ${where} failed verification: ${err.message}`, { cause: err });
  }
  // undici's parser errors (a bad chunk size, an invalid header) may carry no code at all.
  if (code === '' && err.name === 'HTTPParserError') {
    return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} sent an invalid response: ${err.message}`, { cause: err });
  }
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code === 'EPROTO') {
    return new GatewayError('TG_ERR_UPSTREAM_TLS', 'tls-origin', `TLS with ${where} failed: ${err.message}`, { cause: err });
  }
  switch (code) {
    case 'ECONNREFUSED':
      return new GatewayError('TG_ERR_UPSTREAM_REFUSED', 'connect', `${where} refused the connection`, { cause: err });
    case 'ETIMEDOUT':
      return new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to ${where} timed out`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `${where} is unreachable (${code})`, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'HPE_INVALID_CONSTANT':
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} closed the connection (${code})`, { cause: err });
    // From undici, the HTTP/1.1 client of the origin pools (h1-pools.ts).
    case 'UND_ERR_SOCKET':
      // undici refuses any 100 (Continue) (it never sends Expect) and a response to no request.
      if (err.message === 'bad response') {
        return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} sent a response the gateway cannot take: an unsolicited 100 (Continue), or a response to no request`, { cause: err });
      }
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} closed the connection (${err.message})`, { cause: err });
    case 'UND_ERR_INFO':
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} closed the connection (${err.message})`, { cause: err });
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} ended its response before the length its Content-Length declared`, { cause: err });
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} sent a response head over the size limit`, { cause: err });
    case 'UND_ERR_DESTROYED':
    case 'UND_ERR_CLOSED':
      return new GatewayError('TG_ERR_SHUTTING_DOWN', 'forward', `the connection pool for ${where} is closed: the gateway is shutting down`, { cause: err });
    default:
      if (code.startsWith('UND_ERR')) return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `cannot exchange this request with ${where}: ${err.message} (${code})`, { cause: err });
      if (code.startsWith('HPE_')) return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} sent an invalid response (${code})`, { cause: err });
      if (code.startsWith('ERR_HTTP2')) return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${where} failed the HTTP/2 exchange (${code})`, { cause: err });
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `cannot reach ${where}: ${code || err.message}`, { cause: err });
  }
}

/** The error of a deadline passed while connecting (resolve, TCP, TLS handshake together). */
export function connectTimeout(where: string, ms: number): GatewayError {
  return new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to ${where} timed out after ${ms} ms`);
}
