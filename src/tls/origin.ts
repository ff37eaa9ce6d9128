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

export function createOriginAgents(options: OriginAgentOptions): OriginAgents {
  // One secure context for every origin connection: parsing the trust store once, not per
  // connection, and Node's agent does not key its pool on `secureContext` (it would on `ca`).
  const secureContext = tls.createSecureContext({ ca: loadTrustAnchors(options.caFile), minVersion: 'TLSv1.2' });
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
};

/** Maps an error from an origin connection to the gateway's catalogue. */
export function classifyOriginError(err: NodeJS.ErrnoException, origin: string): GatewayError {
  const cause = (err as { cause?: unknown }).cause;
  if (err.code === 'TG_GUARD' && cause instanceof GatewayError) return cause;
  if (cause instanceof GatewayError) return cause;
  const code = err.code ?? '';
  const certFailure = CERT_FAILURES[code];
  if (certFailure) {
    return new GatewayError('TG_ERR_UPSTREAM_CERT', 'tls-origin', `the certificate of ${origin} failed verification: ${certFailure} (${code})`, { cause: err });
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
