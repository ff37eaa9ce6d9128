import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from '../sources/config-error';

/** One `reverse.certificates` entry as written: paths of a PEM certificate (chain) and its key. */
export interface ServerCertificateFiles {
  readonly cert: string;
  readonly key: string;
}

/** A loaded server certificate, ready for handshakes. */
export interface ServerCertificate {
  readonly certFile: string;
  /** DNS names of its subjectAltName, lower case; wildcards as written (`*.apps.example`). */
  readonly names: readonly string[];
  /** IP addresses of its subjectAltName. */
  readonly addresses: readonly string[];
  readonly notAfter: Date;
  readonly secureContext: tls.SecureContext;
}

function problem(file: string, key: string, message: string): ConfigError {
  return new ConfigError([{ file, line: null, path: key, message }]);
}

function readPem(file: string, key: string, marker: RegExp, expected: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw problem(file, key, `cannot read: ${(err as Error).message}`);
  }
  if (!marker.test(text)) throw problem(file, key, `expected ${expected}`);
  return text;
}

/** subjectAltName as Node prints it: `DNS:a.example, DNS:*.b.example, IP Address:127.0.0.1`. */
function altNames(cert: X509Certificate): { names: string[]; addresses: string[] } {
  const names: string[] = [];
  const addresses: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) addresses.push(entry.slice(11));
  }
  return { names, addresses };
}

/**
 * Loads one certificate and key: the key must belong to the certificate, which must name
 * something in its subjectAltName (clients ignore the common name). `key` is the config key
 * the entry came from (`reverse.certificates[0]`), so a problem names file, key and fix.
 */
export function loadServerCertificate(files: ServerCertificateFiles, key: string, now = new Date()): { certificate: ServerCertificate; warning: string | null } {
  const certPem = readPem(files.cert, `${key}.cert`, /-----BEGIN CERTIFICATE-----/, 'a PEM certificate (-----BEGIN CERTIFICATE-----), the server certificate first, then its chain');
  const keyPem = readPem(files.key, `${key}.key`, /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, 'a PEM private key (-----BEGIN PRIVATE KEY-----)');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw problem(files.cert, `${key}.cert`, `not a valid certificate: ${(err as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    throw problem(files.key, `${key}.key`, `not a valid private key (an encrypted key needs decrypting first): ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(privateKey)) throw problem(files.key, `${key}.key`, `this key does not belong to the certificate in ${files.cert}; list the matching pair`);
  const { names, addresses } = altNames(cert);
  if (names.length === 0 && addresses.length === 0) throw problem(files.cert, `${key}.cert`, 'the certificate has no subjectAltName DNS names or addresses; clients would reject it for every host');
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw problem(files.cert, key, `OpenSSL refused the pair: ${(err as Error).message}`);
  }
  const notAfter = new Date(cert.validTo);
  const warning = notAfter.getTime() < now.getTime() ? `the certificate in ${files.cert} expired on ${notAfter.toISOString()}; clients will reject it` : null;
  return { certificate: { certFile: files.cert, names, addresses, notAfter, secureContext }, warning };
}

/** Whether `name` is covered by a SAN entry (RFC 6125 6.4.3: a wildcard is one whole left-most label). */
export function certificateNameMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === name;
  const dot = name.indexOf('.');
  return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
}

/**
 * The server certificates of the reverse-proxy listener, chosen by the ClientHello's server
 * name: an exact SAN name first, then a wildcard, in the order listed; an address or a missing
 * SNI gets the certificate naming that address, else the first one listed (the client then
 * decides whether it accepts it, as with any server's default certificate).
 */
export class ServerCertificateSet {
  constructor(readonly certificates: readonly ServerCertificate[]) {}

  /** Loads every entry; throws ConfigError on the first that is wrong. */
  static load(files: readonly ServerCertificateFiles[], key: string, now = new Date()): { set: ServerCertificateSet; warnings: string[] } {
    const loaded = files.map((entry, i) => loadServerCertificate(entry, `${key}[${i}]`, now));
    return { set: new ServerCertificateSet(loaded.map((l) => l.certificate)), warnings: loaded.flatMap((l) => (l.warning ? [l.warning] : [])) };
  }

  /** The certificate for a server name (lower case) or an address; null only when the set is empty. */
  select(name: string | null): ServerCertificate | null {
    if (name !== null) {
      const exact = this.certificates.find((c) => c.names.includes(name) || c.addresses.includes(name));
      if (exact) return exact;
      const wild = this.certificates.find((c) => c.names.some((pattern) => certificateNameMatches(pattern, name)));
      if (wild) return wild;
    }
    return this.certificates[0] ?? null;
  }

  /**
   * Whether the certificate served for `sni` also covers `host`: a client may send requests for
   * another host on a connection only when the certificate it accepted names that host too
   * (HTTP/2 connection reuse, RFC 9113 9.1.1); a client that sent no SNI got the default one.
   */
  coversOnConnection(sni: string | null, host: string): boolean {
    if (sni === null || sni === host) return true;
    const served = this.select(sni);
    return served !== null && (served.addresses.includes(host) || served.names.some((pattern) => certificateNameMatches(pattern, host)));
  }

  /** Whether some certificate names `name` (for `tollgate check`). */
  covers(name: string): boolean {
    return this.certificates.some((c) => c.names.some((pattern) => certificateNameMatches(pattern, name)));
  }
}
