import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * The bench origin, run as its own process so it has its own core time: HTTP and two HTTPS
 * listeners (one per tunnel mode, so peers that choose splice or bump by port can be compared
 * with tollgate choosing by name), keep-alive, and two endpoints:
 *   /1k          1 KiB body with Content-Length, `no-store`: never served from a cache, so
 *                (b), (e) and the misses of (f) measure forwarding
 *   /1k-cached   the same body with `max-age=600`: after the first request, a cache hit (f)
 *   /bytes?n=N   N bytes streamed in 256 KiB writes with backpressure
 * Prints one JSON line with the bound ports, then serves until killed. Reads its certificate
 * and key from the environment (BENCH_ORIGIN_CERT, BENCH_ORIGIN_KEY: PEM text).
 */
const ONE_KIB = Buffer.alloc(1024, 0x61);
const CHUNK = Buffer.alloc(256 * 1024, 0x62);

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  // Proxies forward absolute-form or origin-form; only the path matters here.
  const pathStart = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2);
  const path = pathStart < 0 ? '/' : url.slice(pathStart);
  if (path === '/1k' || path === '/1k-cached') {
    const cacheControl = path === '/1k' ? 'no-store' : 'max-age=600';
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': ONE_KIB.length, 'cache-control': cacheControl });
    res.end(ONE_KIB);
    return;
  }
  if (path.startsWith('/bytes?n=')) {
    const total = Number(path.slice('/bytes?n='.length));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(CHUNK.length, total - sent);
        sent += n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  res.writeHead(404, { 'content-length': 0 });
  res.end();
}

function listenOn(server: http.Server, host: string, port: number): Promise<number> {
  server.keepAliveTimeout = 60_000;
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * Listens on 127.0.0.1 and, with the same port when free, on ::1: proxies that resolve
 * "localhost" to ::1 first would otherwise pay a refused connection per dial.
 */
async function listen(create: () => http.Server): Promise<number> {
  const port = await listenOn(create(), '127.0.0.1', 0);
  await listenOn(create(), '::1', port).catch(() => undefined);
  return port;
}

async function main(): Promise<void> {
  const cert = process.env.BENCH_ORIGIN_CERT ?? '';
  const key = process.env.BENCH_ORIGIN_KEY ?? '';
  const tlsOptions = { cert, key, ALPNProtocols: ['http/1.1'] };
  const tlsServer = (): http.Server => https.createServer(tlsOptions, handle);
  const ports = { http: await listen(() => http.createServer(handle)), spliceTls: await listen(tlsServer), inspectTls: await listen(tlsServer) };
  process.stdout.write(`${JSON.stringify(ports)}\n`);
}

void main();
