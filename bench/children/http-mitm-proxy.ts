import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';

/**
 * The http-mitm-proxy peer (npm), installed into bench/.peers rather than the project's
 * dependencies. Upstream connections are pooled (its keepAlive) and verified against the bench
 * CA, like tollgate's. Environment: BENCH_PEERS_DIR, BENCH_PORT, BENCH_ORIGIN_CA (file),
 * BENCH_CA_DIR. Prints one JSON line once listening.
 */
interface MitmProxy {
  onError(handler: (ctx: unknown, err: Error) => void): void;
  listen(options: Record<string, unknown>, callback: (err?: Error) => void): void;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const loaded = require(path.join(process.env.BENCH_PEERS_DIR ?? '', 'node_modules', 'http-mitm-proxy')) as { Proxy: new () => MitmProxy };
const ca = readFileSync(process.env.BENCH_ORIGIN_CA ?? '', 'utf8');
const proxy = new loaded.Proxy();
proxy.onError(() => undefined);
proxy.listen(
  {
    host: '127.0.0.1',
    port: Number(process.env.BENCH_PORT),
    sslCaDir: process.env.BENCH_CA_DIR,
    keepAlive: true,
    httpAgent: new http.Agent({ keepAlive: true }),
    httpsAgent: new https.Agent({ keepAlive: true, ca, rejectUnauthorized: true }),
  },
  (err?: Error) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ port: Number(process.env.BENCH_PORT) })}\n`);
  },
);
