/**
 * Test support for src/tls: real openssl/curl processes, temporary directories, a capturing
 * logger and forge-built certificates for cases `openssl req -x509` cannot produce (OpenSSL 3.0
 * cannot backdate). Not used by the gateway itself.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import forge from 'node-forge';
import pino from 'pino';
import type { Logger } from '../../logging/logger';

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a process asynchronously (never execFileSync: a TLS server under test shares this event
 * loop) and kills it after `timeoutMs`. Resolves with the exit code; rejects only when the
 * process cannot be started or times out.
 */
export function runProcess(command: string, args: readonly string[], timeoutMs = 10_000): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException & { killed?: boolean }).killed) {
        reject(new Error(`${command} timed out after ${timeoutMs} ms`));
        return;
      }
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** `openssl verify -x509_strict`; returns the combined output when verification fails. */
export async function opensslVerify(caFile: string, leafFile: string, untrustedFile?: string): Promise<ProcessResult> {
  const args = ['verify', '-x509_strict', '-CAfile', caFile];
  if (untrustedFile) args.push('-untrusted', untrustedFile);
  args.push(leafFile);
  return runProcess('openssl', args);
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-tls-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A pino logger writing into memory, to assert on what is (and is not) logged. */
export function captureLogger(): { logger: Logger; output: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return { logger, output: () => chunks.join('') };
}

export interface ForgeCertificateSpec {
  readonly commonName: string;
  readonly ca: boolean;
  readonly subjectKeyIdentifier: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * A self-signed RSA certificate built and signed with forge, for odd fixtures (expired, not a
 * CA, no SKI). The key comes from Node: forge's own key generation is slow.
 */
export async function writeForgeSelfSigned(dir: string, name: string, spec: ForgeCertificateSpec): Promise<{ certPath: string; keyPath: string; privateKey: KeyObject }> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  cert.serialNumber = '01';
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  const attrs = [{ shortName: 'CN', value: spec.commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: spec.ca, critical: true },
    { name: 'keyUsage', keyCertSign: spec.ca, digitalSignature: true, critical: true },
  ];
  if (spec.subjectKeyIdentifier) extensions.push({ name: 'subjectKeyIdentifier' });
  cert.setExtensions(extensions);
  cert.sign(forgeKey, forge.md.sha256.create());
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  await writeFile(certPath, forge.pki.certificateToPem(cert));
  await writeFile(keyPath, keyPem, { mode: 0o600 });
  return { certPath, keyPath, privateKey };
}

/** Rejects when `promise` has not settled within `ms`: every wait in these tests is bounded. */
export function within<T>(ms: number, promise: Promise<T>, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
