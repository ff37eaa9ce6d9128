import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import { ConfigError } from '../config/config-error';
import { GatewayError } from '../errors/gateway-error';
import type { TlsSummary } from '../audit/fields';

/**
 * The origin side of interception: TLS with full verification against the system's roots plus
 * `upstream.ca_file`, hostname checked, TLS 1.2 minimum, SNI sent. Node ships its own copy of
 * the Mozilla roots and (in Node 20) does not read the operating system's store, where
 * enterprises install their internal CAs, so the system bundle is added when present.
 */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

export function loadTrustAnchors(caFile: string | null): string[] {
  const anchors = [...tls.rootCertificates];
  const system = SYSTEM_BUNDLES.find((file) => existsSync(file));
  if (system) anchors.push(readFileSync(system, 'utf8'));
  if (caFile) {
    let text: string;
    try {
      text = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new ConfigError([{ file: caFile, line: null, path: 'upstream.ca_file', message: `cannot read: ${(err as Error).message}` }]);
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError([{ file: caFile, line: null, path: 'upstream.ca_file', message: 'expected PEM certificates (-----BEGIN CERTIFICATE-----)' }]);
    }
    anchors.push(text);
  }
  return anchors;
}

export interface OriginAgents {
  /** Verifies origins; pooled by host, port and SNI. */
  readonly verified: https.Agent;
  /** Only for rules with `upstream_insecure: true`; a separate pool so its sockets never serve other rules. */
  readonly insecure: https.Agent;
  /** The verifying TLS context both pools use (also used to probe an origin's ALPN). */
  readonly secureContext: tls.SecureContext;
}

export interface OriginAgentOptions {
  readonly caFile: string | null;
  readonly maxSocketsPerHost: number;
  readonly idleTimeoutMs: number;
}

/**
 * Node's cipher list at OpenSSL security level 2. Node 20 leaves OpenSSL at its default level 1,
 * which accepts RSA-1024 certificates that curl, Python, Squid and mitmproxy refuse; Node 20 has
 * no `securityLevel` option, so the level rides on the cipher string (`@SECLEVEL`, which sets
 * it for the whole context: certificate keys and signatures during verification, and the
 * server's ephemeral keys). Node's own list is kept rather than OpenSSL's `DEFAULT`, which
 * would re-admit ciphers Node leaves out. Every origin connection uses this one context: the
 * HTTPS pools, the HTTP/2 sessions and the ALPN probe.
 */
export const ORIGIN_CIPHERS = `${tls.DEFAULT_CIPHERS}:@SECLEVEL=2`;

export function createOriginAgents(options: OriginAgentOptions): OriginAgents {
  // One secure context for every origin connection: parsing the trust store once, not per
  // connection, and Node's agent does not key its pool on `secureContext` (it would on `ca`).
  const secureContext = tls.createSecureContext({ ca: loadTrustAnchors(options.caFile), minVersion: 'TLSv1.2', ciphers: ORIGIN_CIPHERS });
  const common = {
    keepAlive: true,
    maxSockets: options.maxSocketsPerHost,
    maxFreeSockets: 64,
    timeout: options.idleTimeoutMs,
    scheduling: 'lifo' as const,
    maxCachedSessions: 1000,
    secureContext,
    minVersion: 'TLSv1.2' as const,
  };
  const verifyOrigin = true;
  return {
    verified: new https.Agent({ ...common, rejectUnauthorized: verifyOrigin }),
    insecure: new https.Agent({ ...common, rejectUnauthorized: !verifyOrigin }),
    secureContext,
  };
}

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

/** Maps an error from an origin connection to the gateway's catalogue. */
export function classifyOriginError(err: NodeJS.ErrnoException, origin: string): GatewayError {
  const cause = (err as { cause?: unknown }).cause;
  if (err.code === 'TG_GUARD' && cause instanceof GatewayError) return cause;
  if (cause instanceof GatewayError) return cause;
  const code = err.code === 'UNSPECIFIED' ? (UNNAMED_CERT_FAILURES[err.message] ?? 'UNSPECIFIED') : (err.code ?? '');
  const certFailure = CERT_FAILURES[code];
  if (certFailure) {
    return new GatewayError('TG_ERR_UPSTREAM_CERT', 'tls-origin', `the certificate of ${origin} failed verification: ${certFailure} (${code})`, { cause: err });
  }
  // Any other unnamed verification failure is still a certificate failure, never "unreachable".
  if (code === 'UNSPECIFIED') {
    return new GatewayError('TG_ERR_UPSTREAM_CERT', 'tls-origin', `the certificate of ${origin} failed verification: ${err.message}`, { cause: err });
  }
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code === 'EPROTO') {
    return new GatewayError('TG_ERR_UPSTREAM_TLS', 'tls-origin', `TLS with ${origin} failed: ${err.message}`, { cause: err });
  }
  switch (code) {
    case 'ECONNREFUSED':
      return new GatewayError('TG_ERR_UPSTREAM_REFUSED', 'connect', `${origin} refused the connection`, { cause: err });
    case 'ETIMEDOUT':
      return new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to ${origin} timed out`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `${origin} is unreachable (${code})`, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'HPE_INVALID_CONSTANT':
      return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${origin} closed the connection (${code})`, { cause: err });
    default:
      if (code.startsWith('HPE_')) return new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${origin} sent an invalid response (${code})`, { cause: err });
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `cannot reach ${origin}: ${code || err.message}`, { cause: err });
  }
}

export interface OriginTlsFacts {
  readonly certSha256: string | null;
  readonly tls: TlsSummary;
}

const factsBySocket = new WeakMap<TLSSocket, OriginTlsFacts>();

/** Certificate fingerprint and TLS parameters of a pooled origin socket, computed once. */
export function originTlsFacts(socket: TLSSocket): OriginTlsFacts {
  let facts = factsBySocket.get(socket);
  if (!facts) {
    const cert = socket.getPeerCertificate();
    facts = {
      certSha256: cert && 'fingerprint256' in cert ? cert.fingerprint256 : null,
      tls: { version: socket.getProtocol() ?? null, cipher: socket.getCipher()?.name ?? null },
    };
    factsBySocket.set(socket, facts);
  }
  return facts;
}
