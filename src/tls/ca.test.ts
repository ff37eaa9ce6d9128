import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, copyFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../errors/gateway-error';
import { silentLogger } from '../logging/logger';
import { exportCaCertificate, loadOrCreateAuthority, type LoadCaOptions } from './ca';
import { captureLogger, runProcess, withTempDir, writeForgeSelfSigned } from './testdata/harness';

const HOUR = 3600_000;

function paths(dir: string): Pick<LoadCaOptions, 'certPath' | 'keyPath'> {
  return { certPath: join(dir, 'ca', 'ca.pem'), keyPath: join(dir, 'private', 'ca.key') };
}

async function expectCaError(promise: Promise<unknown>, ...fragments: (string | RegExp)[]): Promise<GatewayError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  const gatewayError = err as GatewayError;
  expect(gatewayError.code).toBe('TG_ERR_CA');
  expect(gatewayError.phase).toBe('startup');
  for (const fragment of fragments) expect(gatewayError.message).toMatch(fragment);
  return gatewayError;
}

/** The base64 body lines of a PEM key: what must never show up in a log or error. */
function keyBodyLines(pem: string): string[] {
  return pem.split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
}

describe('generated CA', () => {
  test('is created once with exact file modes, logged without key material, and reused', async () => {
    await withTempDir(async (dir) => {
      const { logger, output } = captureLogger();
      const previousUmask = process.umask(0o000); // the modes must not depend on the umask
      let first: Awaited<ReturnType<typeof loadOrCreateAuthority>>;
      try {
        first = await loadOrCreateAuthority({ ...paths(dir), logger });
      } finally {
        process.umask(previousUmask);
      }
      const { certPath, keyPath } = paths(dir);
      expect(first.created).toBe(true);
      expect((await stat(certPath)).mode & 0o777).toBe(0o644);
      expect((await stat(keyPath)).mode & 0o777).toBe(0o600);

      const ca = first.authority;
      const x509 = new X509Certificate(await readFile(certPath));
      expect(x509.fingerprint256).toBe(ca.fingerprint256);
      expect(x509.ca).toBe(true);
      expect(ca.commonName).toBe(`tollgate CA (${hostname()})`);
      expect(ca.chainPems).toEqual([]);
      expect(x509.publicKey.asymmetricKeyType).toBe('ec');
      expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(exportCaCertificate(ca, 'pem').toString()).toBe(ca.certPem);
      expect(exportCaCertificate(ca, 'der').equals(x509.raw)).toBe(true);
      // Backdated one hour, valid ten years.
      expect(Date.now() - ca.notBefore.getTime()).toBeGreaterThanOrEqual(HOUR - 5_000);
      expect(ca.notAfter.getTime() - ca.notBefore.getTime()).toBe(10 * 365 * 24 * HOUR);

      const text = (await runProcess('openssl', ['x509', '-noout', '-text', '-in', certPath])).stdout;
      expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
      expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
      const ski = /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(text)?.[1];
      expect(ski).toBeDefined();
      expect(
        ca.subjectKeyIdentifier
          .toString('hex')
          .toUpperCase()
          .replace(/(..)(?!$)/g, '$1:'),
      ).toBe(ski);
      expect(text).toMatch(new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}`));
      expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      expect(text).toMatch(/Subject: CN = tollgate CA \(.*\), O = tollgate/);
      const selfCheck = await runProcess('openssl', ['verify', '-x509_strict', '-CAfile', certPath, certPath]);
      expect(selfCheck.stdout + selfCheck.stderr).toContain(': OK');

      const keyPem = await readFile(keyPath, 'utf8');
      expect(keyPem).toContain('BEGIN PRIVATE KEY');
      const log = output();
      expect(log).toContain('generating a new gateway CA, this happens once');
      expect(log).toContain(ca.fingerprint256);
      expect(log).toContain(certPath);
      expect(log).not.toContain('PRIVATE KEY');
      for (const line of keyBodyLines(keyPem)) expect(log).not.toContain(line);

      const second = await loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() });
      expect(second.created).toBe(false);
      expect(second.authority.fingerprint256).toBe(ca.fingerprint256);
      expect(second.authority.subjectKeyIdentifier.equals(ca.subjectKeyIdentifier)).toBe(true);
      expect(second.authority.subjectDer.equals(ca.subjectDer)).toBe(true);
      expect(await readFile(keyPath, 'utf8')).toBe(keyPem);
    });
  });

  test('rsa-3072 option, custom name, and a passphrase-protected key', async () => {
    await withTempDir(async (dir) => {
      const opts = { ...paths(dir), keyType: 'rsa-3072' as const, commonName: 'Example Corp inspection CA', keyPassphrase: 'correct horse' };
      const { authority, created } = await loadOrCreateAuthority({ ...opts, logger: silentLogger() });
      expect(created).toBe(true);
      expect(authority.commonName).toBe('Example Corp inspection CA');
      const x509 = new X509Certificate(authority.certDer);
      expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
      const text = (await runProcess('openssl', ['x509', '-noout', '-text', '-in', opts.certPath])).stdout;
      expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);

      const keyPem = await readFile(opts.keyPath, 'utf8');
      expect(keyPem).toContain('BEGIN ENCRYPTED PRIVATE KEY');
      expect(() => createPrivateKey({ key: keyPem, passphrase: 'correct horse' })).not.toThrow();

      const reloaded = await loadOrCreateAuthority({ ...opts, logger: silentLogger() });
      expect(reloaded.created).toBe(false);
      expect(reloaded.authority.fingerprint256).toBe(authority.fingerprint256);

      const { keyPassphrase: _omit, ...withoutPassphrase } = opts;
      const err = await expectCaError(loadOrCreateAuthority({ ...withoutPassphrase, logger: silentLogger() }), /passphrase/);
      for (const line of keyBodyLines(keyPem)) expect(err.message).not.toContain(line);
    });
  });
});

describe('refusals', () => {
  test('a key readable by group or others', async () => {
    await withTempDir(async (dir) => {
      const { keyPath } = paths(dir);
      await loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() });
      await chmod(keyPath, 0o644);
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() }), keyPath, '0644', `chmod 600 ${keyPath}`);
      await chmod(keyPath, 0o620);
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() }), '0620');
      await chmod(keyPath, 0o400);
      await expect(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() })).resolves.toMatchObject({ created: false });
    });
  });

  test('only one of certificate and key present', async () => {
    await withTempDir(async (dir) => {
      const { certPath, keyPath } = paths(dir);
      await loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() });
      const keyPem = await readFile(keyPath);
      await rm(keyPath);
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() }), certPath, keyPath, /remove/);
      await writeFile(keyPath, keyPem, { mode: 0o600 });
      await rm(certPath);
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() }), certPath, keyPath);
    });
  });

  test('a chain file configured for a CA that does not exist', async () => {
    await withTempDir(async (dir) => {
      const chainPath = join(dir, 'chain.pem');
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), chainPath, logger: silentLogger() }), chainPath, /check the paths/);
      await expect(stat(paths(dir).keyPath)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });

  test('a key that does not belong to the certificate', async () => {
    await withTempDir(async (dir) => {
      const a = { certPath: join(dir, 'a.pem'), keyPath: join(dir, 'a.key') };
      const b = { certPath: join(dir, 'b.pem'), keyPath: join(dir, 'b.key') };
      await loadOrCreateAuthority({ ...a, logger: silentLogger() });
      await loadOrCreateAuthority({ ...b, logger: silentLogger() });
      await copyFile(b.keyPath, a.keyPath);
      const err = await expectCaError(loadOrCreateAuthority({ ...a, logger: silentLogger() }), /does not belong/, a.keyPath);
      for (const line of keyBodyLines(await readFile(b.keyPath, 'utf8'))) expect(err.message).not.toContain(line);
    });
  });

  test('a certificate that is not a CA', async () => {
    await withTempDir(async (dir) => {
      const now = Date.now();
      const fixture = await writeForgeSelfSigned(dir, 'server', {
        commonName: 'not a ca',
        ca: false,
        subjectKeyIdentifier: true,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 24 * HOUR),
      });
      await expectCaError(loadOrCreateAuthority({ ...fixture, logger: silentLogger() }), /not a CA certificate/);
    });
  });

  test('an expired CA, a CA not yet valid, and a CA without subjectKeyIdentifier', async () => {
    await withTempDir(async (dir) => {
      const now = Date.now();
      const expired = await writeForgeSelfSigned(dir, 'expired', {
        commonName: 'expired',
        ca: true,
        subjectKeyIdentifier: true,
        notBefore: new Date(now - 48 * HOUR),
        notAfter: new Date(now - 24 * HOUR),
      });
      await expectCaError(loadOrCreateAuthority({ ...expired, logger: silentLogger() }), /expired/);
      const future = await writeForgeSelfSigned(dir, 'future', {
        commonName: 'future',
        ca: true,
        subjectKeyIdentifier: true,
        notBefore: new Date(now + 24 * HOUR),
        notAfter: new Date(now + 48 * HOUR),
      });
      await expectCaError(loadOrCreateAuthority({ ...future, logger: silentLogger() }), /not valid before/);
      const noSki = await writeForgeSelfSigned(dir, 'no-ski', {
        commonName: 'no ski',
        ca: true,
        subjectKeyIdentifier: false,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 24 * HOUR),
      });
      await expectCaError(loadOrCreateAuthority({ ...noSki, logger: silentLogger() }), /subjectKeyIdentifier/, /authorityKeyIdentifier/);
      // The same forge-built CA with an SKI loads: the refusals above are about the one property.
      const good = await writeForgeSelfSigned(dir, 'good', {
        commonName: 'good',
        ca: true,
        subjectKeyIdentifier: true,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 24 * HOUR),
      });
      const loaded = await loadOrCreateAuthority({ ...good, logger: silentLogger() });
      expect(loaded.authority.commonName).toBe('good');
      expect(loaded.authority.chainPems).toEqual([]);
    });
  });

  test('a certificate file holding a bundle, and an unreadable chain file', async () => {
    await withTempDir(async (dir) => {
      const { certPath } = paths(dir);
      await loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() });
      const pem = await readFile(certPath, 'utf8');
      await writeFile(certPath, pem + pem);
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), logger: silentLogger() }), /2 certificates/, /chain file/);
      await writeFile(certPath, pem);
      const chainPath = join(dir, 'chain.pem');
      await writeFile(chainPath, 'not a certificate\n');
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), chainPath, logger: silentLogger() }), chainPath);
      await writeFile(chainPath, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      await expectCaError(loadOrCreateAuthority({ ...paths(dir), chainPath, logger: silentLogger() }), /not a valid X.509/);
    });
  });
});
