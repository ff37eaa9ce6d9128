import { startHttpOrigin, startHttpsOrigin, type Origin } from './origins';
import { issue, tempDir, writePem } from './pki';

export interface TestOrigins {
  /** Plain HTTP origin. */
  readonly plain: Origin;
  /** HTTPS origin whose certificate names every test destination. */
  readonly tls: Origin;
  /** The CA that issued the HTTPS origin's certificate (trust it for spliced destinations). */
  readonly originCaFile: string;
  close(): Promise<void>;
}

/** Names the HTTPS origin's certificate covers; all resolve to 127.0.0.1 in the test gateway. */
export const TEST_NAMES = ['origin.test', 'inspect.test', 'denied.test', 'other.test'] as const;

/** A plain and a TLS origin on 127.0.0.1, with a private CA for the TLS one. */
export async function startTestOrigins(): Promise<TestOrigins> {
  const dir = tempDir('origins');
  const ca = issue({ commonName: 'origin test CA', isCa: true });
  const leaf = issue({ commonName: 'origin.test', dnsNames: [...TEST_NAMES], ipAddresses: ['127.0.0.1'], issuer: ca });
  const originCaFile = writePem(dir, 'origin-ca.pem', ca.certPem);
  const plain = await startHttpOrigin('plain');
  const tls = await startHttpsOrigin('tls', { cert: leaf.certPem + ca.certPem, key: leaf.keyPem });
  return {
    plain,
    tls,
    originCaFile,
    close: async () => {
      await plain.close();
      await tls.close();
    },
  };
}
