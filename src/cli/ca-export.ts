import { loadConfig } from '../config/load-config';
import { silentLogger } from '../logging/logger';
import { exportCaCertificate, loadOrCreateAuthority } from '../tls/ca';

/** `tollgate ca export`: the CA certificate for installation on clients; never the key. */
export async function runCaExport(configPath: string, format: 'pem' | 'der', out: (data: Buffer) => void): Promise<void> {
  const config = loadConfig(configPath);
  const { authority } = await loadOrCreateAuthority({
    certPath: config.ca.cert,
    keyPath: config.ca.key,
    chainPath: config.ca.chain,
    keyType: config.ca.keyType,
    logger: silentLogger(),
  });
  out(exportCaCertificate(authority, format));
}
