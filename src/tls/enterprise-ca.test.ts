/**
 * An enterprise PKI built with the openssl CLI (independently of the gateway's DER code):
 *
 *   root (RSA, self-signed, trusted by clients)
 *     -> policy CA (P-384, shipped in the chain file)
 *       -> issuing CA (P-384, SKI = SHA-256 truncated to 160 bits as cert-manager and RFC 7093
 *          do, subject in PrintableString) = the gateway CA
 *         -> minted leaves
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../logging/logger';
import { loadOrCreateAuthority, type CertificateAuthority } from './ca';
import { computeKeyIdentifier, nodeBytes, readCertificate, subjectPublicKeyBits } from './der';
import { LeafKeyPool } from './key-pool';
import { LeafCache } from './leaf-cache';
import { mintLeaf } from './mint-leaf';
import { opensslVerify, runProcess, within } from './testdata/harness';

let dir: string;
let authority: CertificateAuthority;
let truncatedSki: Buffer;
let rootPath: string;
let issuingPath: string;

function file(name: string): string {
  return join(dir, name);
}

async function openssl(...args: string[]): Promise<string> {
  const result = await runProcess('openssl', args);
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

function colonHex(bytes: Buffer): string {
  return bytes
    .toString('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollgate-enterprise-'));
  rootPath = file('root.pem');
  issuingPath = file('issuing.pem');
  await openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file('root.key'));
  await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', file('policy.key'));
  // SEC1 "EC PRIVATE KEY" form, as many enterprise tools write it.
  await openssl('ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', file('issuing.key'));

  const issuingSpki = createPublicKey(await readFile(file('issuing.key'))).export({ type: 'spki', format: 'der' });
  truncatedSki = createHash('sha256').update(subjectPublicKeyBits(issuingSpki)).digest().subarray(0, 20);

  await writeFile(
    file('openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'string_mask = default', // PrintableString where possible, unlike forge and OpenSSL's utf8only
      '[dn]',
      '[root]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[policy]',
      'basicConstraints = critical, CA:TRUE, pathlen:1',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '[issuing]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, digitalSignature, keyCertSign, cRLSign',
      `subjectKeyIdentifier = ${colonHex(truncatedSki)}`,
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  const cnf = file('openssl.cnf');
  await openssl('req', '-config', cnf, '-x509', '-new', '-key', file('root.key'), '-subj', '/C=US/O=Example Corp/CN=Example Root CA', '-days', '3650', '-extensions', 'root', '-out', rootPath);
  await openssl('req', '-config', cnf, '-new', '-key', file('policy.key'), '-subj', '/C=US/O=Example Corp/CN=Example Policy CA', '-out', file('policy.csr'));
  await openssl(
    'x509',
    '-req',
    '-in',
    file('policy.csr'),
    '-CA',
    rootPath,
    '-CAkey',
    file('root.key'),
    '-set_serial',
    '0x1001',
    '-days',
    '1825',
    '-extfile',
    cnf,
    '-extensions',
    'policy',
    '-out',
    file('policy.pem'),
  );
  await openssl('req', '-config', cnf, '-new', '-key', file('issuing.key'), '-subj', '/C=US/O=Example Corp/OU=Egress/CN=Example Egress Issuing CA', '-out', file('issuing.csr'));
  await openssl(
    'x509',
    '-req',
    '-in',
    file('issuing.csr'),
    '-CA',
    file('policy.pem'),
    '-CAkey',
    file('policy.key'),
    '-set_serial',
    '0x2002',
    '-days',
    '365',
    '-extfile',
    cnf,
    '-extensions',
    'issuing',
    '-out',
    issuingPath,
  );
  await chmod(file('issuing.key'), 0o600);

  ({ authority } = await loadOrCreateAuthority({
    certPath: issuingPath,
    keyPath: file('issuing.key'),
    chainPath: file('policy.pem'),
    logger: silentLogger(),
  }));
}, 30_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the fixture is what it claims to be', async () => {
  const text = await openssl('x509', '-noout', '-text', '-nameopt', 'multiline,show_type', '-in', issuingPath);
  expect(text).toContain(`X509v3 Subject Key Identifier: \n                ${colonHex(truncatedSki)}`);
  expect(text).toMatch(/commonName\s+= PRINTABLESTRING:Example Egress Issuing CA/);
  const issuingSpki = new X509Certificate(await readFile(issuingPath)).publicKey.export({ type: 'spki', format: 'der' });
  expect(computeKeyIdentifier(issuingSpki).equals(truncatedSki)).toBe(false); // not the SHA-1 method
});

test('loads an intermediate as the gateway CA with its chain', async () => {
  const issuing = new X509Certificate(await readFile(issuingPath));
  const policy = new X509Certificate(await readFile(file('policy.pem')));
  expect(authority.subjectKeyIdentifier.equals(truncatedSki)).toBe(true);
  expect(authority.fingerprint256).toBe(issuing.fingerprint256);
  expect(authority.commonName).toBe('Example Egress Issuing CA');
  expect(authority.chainPems.map((pem) => new X509Certificate(pem).fingerprint256)).toEqual([issuing.fingerprint256, policy.fingerprint256]);
  expect(authority.subjectDer.equals(nodeBytes(issuing.raw, readCertificate(issuing.raw).subject))).toBe(true);
});

test('leaves carry the intermediate SKI as AKI, its subject verbatim, and verify to the root', async () => {
  const keys = await LeafKeyPool.create({ size: 2, keyType: 'ecdsa-p256', logger: silentLogger(), caSpkiDer: authority.spkiDer });
  const chainPath = file('sent-chain.pem');
  await writeFile(chainPath, authority.chainPems.join(''));
  const rsaKeys = await LeafKeyPool.create({ size: 1, keyType: 'rsa-2048', logger: silentLogger(), caSpkiDer: authority.spkiDer });
  for (const [i, key] of [keys.next(), rsaKeys.next()].entries()) {
    const leaf = mintLeaf(authority, key, { kind: 'dns', name: 'intranet.example.com' }, { validityMs: 7 * 24 * 3600_000 });
    const leafPath = file(`leaf-${i}.pem`);
    await writeFile(leafPath, leaf.certPem);

    const verify = await opensslVerify(rootPath, leafPath, chainPath);
    expect(verify.stdout + verify.stderr).toBe(`${leafPath}: OK\n`);
    // Without the chain the gateway sends, the path cannot be built: the chain is necessary.
    const without = await opensslVerify(rootPath, leafPath);
    expect(without.code).not.toBe(0);

    const text = await openssl('x509', '-noout', '-text', '-nameopt', 'multiline,show_type', '-in', leafPath);
    expect(text).toMatch(new RegExp(`Authority Key Identifier: \\s*\\n\\s*(keyid:)?${colonHex(truncatedSki)}\\n`));
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA384/);
    expect(text).toMatch(
      /Issuer:\s*\n\s*countryName\s+= PRINTABLESTRING:US\n\s*organizationName\s+= PRINTABLESTRING:Example Corp\n\s*organizationalUnitName\s+= PRINTABLESTRING:Egress\n\s*commonName\s+= PRINTABLESTRING:Example Egress Issuing CA\n/,
    );
    expect(nodeBytes(leaf.certDer, readCertificate(leaf.certDer).issuer).equals(authority.subjectDer)).toBe(true);
  }
});

test('a Node client and curl trusting only the root accept a served leaf', async () => {
  const keys = await LeafKeyPool.create({ size: 1, logger: silentLogger(), caSpkiDer: authority.spkiDer });
  const cache = new LeafCache({ authority, keys, logger: silentLogger() });
  const server = tls.createServer(
    {
      SNICallback: (name, callback) => {
        cache.get({ kind: 'dns', name }).then(
          (context) => callback(null, context.secureContext),
          (err: Error) => callback(err),
        );
      },
    },
    (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    },
  );
  server.on('tlsClientError', () => undefined);
  await within(5_000, new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)), 'listen');
  const { port } = server.address() as AddressInfo;
  try {
    const rootPem = await readFile(rootPath, 'utf8');
    const presented = await within(
      5_000,
      new Promise<number>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'intranet.example.com', ca: rootPem }, () => {
          // Leaf, issuing CA, policy CA (the root comes from the client's trust store).
          let depth = 0;
          for (let cert = socket.getPeerCertificate(true); cert && depth < 5; depth++) {
            if (cert.issuerCertificate === cert) break;
            cert = cert.issuerCertificate;
          }
          socket.destroy();
          resolve(depth);
        });
        socket.on('error', reject);
      }),
      'TLS client',
    );
    expect(presented).toBe(3);

    const curl = await runProcess('curl', [
      '--silent',
      '--show-error',
      '--noproxy',
      '*',
      '--max-time',
      '5',
      '--cacert',
      rootPath,
      '--resolve',
      `intranet.example.com:${port}:127.0.0.1`,
      `https://intranet.example.com:${port}/`,
    ]);
    expect(curl.stderr).toBe('');
    expect(curl.stdout).toBe('ok');
  } finally {
    await within(5_000, new Promise<void>((resolve) => server.close(() => resolve())), 'server close');
  }
});
