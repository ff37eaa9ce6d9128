import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { GatewayError } from '../errors/gateway-error';
import { buildAuthority } from './build-authority';
import { caError, type CertificateAuthority, type LoadCaOptions } from './certificate-authority';
import { decodePemBlocks } from './der';

/**
 * Loads an operator's CA whose certificate and key both exist: the key's permissions first, then
 * the certificate, the key and the chain file, all checked by `buildAuthority`.
 */
export async function loadAuthority(opts: LoadCaOptions, keyMode: number): Promise<CertificateAuthority> {
  // POSIX permission bits; Windows reports synthetic modes, and access there is ACL-based.
  if (process.platform !== 'win32' && (keyMode & 0o077) !== 0) {
    const mode = (keyMode & 0o777).toString(8).padStart(4, '0');
    throw caError(`gateway CA key ${opts.keyPath} has mode ${mode}: readable or writable by group or others. ` + `Restrict it with: chmod 600 ${opts.keyPath}`);
  }
  const certDer = await readCertificateFile(opts.certPath);
  const privateKey = await readPrivateKey(opts.keyPath, opts.keyPassphrase);
  const chainDers = opts.chainPath ? await readChainFile(opts.chainPath) : [];
  const authority = buildAuthority(certDer, privateKey, chainDers, opts, new Date());
  opts.logger.info(
    {
      cert_path: opts.certPath,
      fingerprint256: authority.fingerprint256,
      common_name: authority.commonName,
      not_after: authority.notAfter.toISOString(),
      chain_length: authority.chainPems.length,
    },
    'loaded gateway CA',
  );
  return authority;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

export async function statIfExists(path: string): Promise<{ mode: number } | undefined> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw caError(`gateway CA: ${path} is not a regular file`);
    return st;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    if (err instanceof GatewayError) throw err;
    throw caError(`gateway CA: cannot access ${path}: ${(err as Error).message}`, err);
  }
}

async function readFileOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw caError(`gateway CA: cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

function looksLikePem(data: Buffer): boolean {
  return data.includes('-----BEGIN ');
}

async function readCertificateFile(path: string): Promise<Buffer> {
  const data = await readFileOrFail(path, 'certificate');
  if (!looksLikePem(data)) return data; // DER; parsed and checked by buildAuthority
  const blocks = decodePemBlocks(data.toString('latin1'), 'CERTIFICATE');
  if (blocks.length === 0) throw caError(`gateway CA certificate ${path} contains no PEM CERTIFICATE block`);
  if (blocks.length > 1) {
    throw caError(`gateway CA certificate ${path} holds ${blocks.length} certificates; put only the issuing CA there and its intermediates in the chain file`);
  }
  return blocks[0]!;
}

async function readPrivateKey(path: string, passphrase: string | undefined): Promise<KeyObject> {
  const data = await readFileOrFail(path, 'key');
  try {
    return looksLikePem(data) ? createPrivateKey({ key: data, format: 'pem', ...(passphrase !== undefined ? { passphrase } : {}) }) : createPrivateKey({ key: data, format: 'der', type: 'pkcs8' });
  } catch (err) {
    // OpenSSL's reason strings ("bad decrypt", "unsupported") never quote the key.
    const reason = (err as Error).message;
    const encrypted = data.includes('ENCRYPTED');
    const hint = !encrypted ? '' : passphrase === undefined ? ' The key is encrypted: configure its passphrase.' : ' The key is encrypted: check the configured passphrase.';
    throw caError(`gateway CA key ${path} cannot be loaded (${reason}).${hint}`, err);
  }
}

async function readChainFile(path: string): Promise<Buffer[]> {
  const data = await readFileOrFail(path, 'chain file');
  const blocks = decodePemBlocks(data.toString('latin1'), 'CERTIFICATE');
  if (blocks.length === 0) throw caError(`gateway CA chain file ${path} contains no PEM CERTIFICATE block`);
  return blocks;
}
