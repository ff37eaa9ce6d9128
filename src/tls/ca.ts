import { caError, type CertificateAuthority, type LoadCaOptions } from './certificate-authority';
import { generateAuthority } from './generate-ca';
import { loadAuthority, statIfExists } from './load-ca';

/**
 * The gateway CA's entry point: load the operator's CA, or generate one on first start. The
 * checks live in build-authority.ts, reading the files in load-ca.ts, generation in
 * generate-ca.ts.
 */

export type { CaKeyType, CertificateAuthority, LeafSigner, LoadCaOptions } from './certificate-authority';

/**
 * Loads the gateway CA from `certPath`/`keyPath`, or generates and stores one when neither file
 * exists. Every problem is a TG_ERR_CA at startup with a message that says how to fix it; no
 * message or log line ever carries key material.
 */
export async function loadOrCreateAuthority(opts: LoadCaOptions): Promise<{ authority: CertificateAuthority; created: boolean }> {
  const [certStat, keyStat] = await Promise.all([statIfExists(opts.certPath), statIfExists(opts.keyPath)]);
  if (!certStat && !keyStat) {
    if (opts.chainPath) {
      // A chain file only makes sense with an enterprise CA, so the paths are probably wrong;
      // generating a fresh CA here would silently replace the one clients trust.
      throw caError(
        `gateway CA: a chain file (${opts.chainPath}) is configured but neither ${opts.certPath} nor ` +
          `${opts.keyPath} exists; check the paths, or remove the chain setting to let the gateway generate its own CA`,
      );
    }
    return { authority: await generateAuthority(opts), created: true };
  }
  if (!certStat || !keyStat) {
    const [present, missing] = certStat ? [opts.certPath, opts.keyPath] : [opts.keyPath, opts.certPath];
    throw caError(
      `gateway CA: ${present} exists but ${missing} does not; both the certificate (${opts.certPath}) ` +
        `and its key (${opts.keyPath}) are needed. Restore the missing file, or remove ${present} ` +
        `to let the gateway generate a new CA (clients must then trust the new one)`,
    );
  }
  return { authority: await loadAuthority(opts, keyStat.mode), created: false };
}

/** The issuing CA certificate, for clients to install (admin endpoint, CLI export). */
export function exportCaCertificate(authority: CertificateAuthority, format: 'pem' | 'der'): Buffer {
  return format === 'der' ? Buffer.from(authority.certDer) : Buffer.from(authority.certPem, 'ascii');
}
