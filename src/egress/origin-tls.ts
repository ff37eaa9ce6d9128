import { existsSync, readFileSync } from 'node:fs';
import tls, { type TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { TlsSummary } from '../audit/record-fields';
import { ConfigError } from '../sources/config-error';

/**
 * The origin side of interception: TLS with full verification against the system's roots plus
 * `upstream.ca_file`, hostname checked, TLS 1.2 minimum, SNI sent. Node ships its own copy of
 * the Mozilla roots and (in Node 20) does not read the operating system's store, where
 * enterprises install their internal CAs, so the system bundle is added when present.
 */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

function loadTrustAnchors(caFile: string | null): string[] {
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

/**
 * Node's cipher list at OpenSSL security level 2. Node 20 leaves OpenSSL at its default level 1,
 * which accepts RSA-1024 certificates that curl, Python, Squid and mitmproxy refuse; Node 20 has
 * no `securityLevel` option, so the level rides on the cipher string (`@SECLEVEL`, which sets
 * it for the whole context: certificate keys and signatures during verification, and the
 * server's ephemeral keys). Node's own list is kept rather than OpenSSL's `DEFAULT`, which
 * would re-admit ciphers Node leaves out.
 */
export const ORIGIN_CIPHERS = `${tls.DEFAULT_CIPHERS}:@SECLEVEL=2`;

/**
 * The one TLS context of every origin connection (the HTTP/1 pools, HTTP/2 sessions and the
 * ALPN probe all dial through egress.ts): the trust store is parsed once, not per connection.
 */
export function createOriginContext(caFile: string | null): tls.SecureContext {
  return tls.createSecureContext({ ca: loadTrustAnchors(caFile), minVersion: 'TLSv1.2', ciphers: ORIGIN_CIPHERS });
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

/**
 * TLS sessions of origins, for resumption: a new connection to an origin seen before skips the
 * full handshake (and its certificate verification, which the resumed session already passed).
 * Keyed by everything that shaped the verification: address, port, server name and whether it
 * was verified at all, so an unverified session never resumes for a verifying connection.
 */
export class TlsSessionCache {
  private readonly sessions: LRUCache<string, Buffer>;

  constructor(maxEntries: number) {
    this.sessions = new LRUCache({ max: Math.max(1, maxEntries) });
  }

  static key(host: string, port: number, servername: string | null, verified: boolean): string {
    return `${host}|${port}|${servername ?? ''}|${verified ? 'v' : 'u'}`;
  }

  get(key: string): Buffer | undefined {
    return this.sessions.get(key);
  }

  remember(key: string, socket: TLSSocket): void {
    socket.on('session', (session: Buffer) => this.sessions.set(key, session));
  }
}
