import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import forge from 'node-forge';
import type { Issued } from './pki';

/**
 * Certificates that OpenSSL refuses at security level 2 but accepts at Node's default level 1
 * (RSA-1024 keys), or refuses outright (SHA-1 signatures), built with node-forge because
 * OpenSSL 3's own tools refuse to produce some of them at their default level.
 */

export interface WeakIssueOptions {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly isCa?: boolean;
  readonly issuer?: Issued;
  /** RSA modulus length; 2048 unless a test wants a weak key. */
  readonly keyBits?: number;
  /** Signature digest; sha256 unless a test wants a weak signature. */
  readonly md?: 'sha1' | 'sha256';
}

const HOUR = 3_600_000;

export function issueWithStrength(options: WeakIssueOptions): Issued {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: options.keyBits ?? 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - HOUR);
  cert.validity.notAfter = new Date(Date.now() + 30 * 24 * HOUR);
  const subject = [
    { name: 'commonName', value: options.commonName },
    { name: 'organizationName', value: 'tollgate tests' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(options.issuer ? options.issuer.cert.subject.attributes : subject);
  const extensions: object[] = options.isCa
    ? [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      ]
    : [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: (options.dnsNames ?? [options.commonName]).map((value) => ({ type: 2, value })) },
      ];
  extensions.push({ name: 'subjectKeyIdentifier' });
  if (options.issuer) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: options.issuer.cert.generateSubjectKeyIdentifier().getBytes() });
  cert.setExtensions(extensions);
  const md = options.md === 'sha1' ? forge.md.sha1.create() : forge.md.sha256.create();
  cert.sign(options.issuer ? options.issuer.key : key, md);
  return { certPem: forge.pki.certificateToPem(cert), keyPem, cert, key };
}

export interface SniOrigin {
  readonly port: number;
  /** Requests seen, by the server name the client sent. */
  readonly requests: Map<string, number>;
  close(): Promise<void>;
}

/**
 * One HTTPS origin on 127.0.0.1 that speaks h2 and http/1.1 and serves a different certificate
 * per SNI name (`certs`), answering "hello from <name>". Runs at security level 0: OpenSSL 3
 * refuses even to load a SHA-1-signed certificate into a context at its default level 1.
 */
export async function startSniOrigin(certs: Readonly<Record<string, { cert: string; key: string }>>, fallback: string): Promise<SniOrigin> {
  const lenient = (c: { cert: string; key: string }): tls.SecureContextOptions => ({ ...c, ciphers: 'DEFAULT@SECLEVEL=0' });
  const contexts = new Map(Object.entries(certs).map(([name, c]) => [name, tls.createSecureContext(lenient(c))]));
  const requests = new Map<string, number>();
  const server = http2.createSecureServer({
    ...lenient(certs[fallback]!),
    allowHTTP1: true,
    SNICallback: (name, done) => done(null, contexts.get(name) ?? contexts.get(fallback)!),
  });
  server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const name = (req.socket as tls.TLSSocket).servername || 'none';
    requests.set(name, (requests.get(name) ?? 0) + 1);
    const body = `hello from ${name}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  // Refused handshakes are the point of these origins.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
