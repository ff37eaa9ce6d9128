import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/**
 * An origin for cache tests that counts every request per path (query included) and answers
 * with the caching headers a test needs. Bodies carry the hit count, so a response served
 * from the cache is told apart from a fresh one by its body too.
 *   /max-age        Cache-Control: max-age=60
 *   /no-store       Cache-Control: no-store
 *   /private        Cache-Control: private, max-age=60
 *   /public         Cache-Control: public, max-age=60
 *   /vary           max-age=60, Vary: Accept-Language; body names the language
 *   /etag           max-age=0 with ETag "v1"; If-None-Match: "v1" gets 304
 *   /versioned      max-age=0 with ETag "v<version>" (settable); a matching If-None-Match gets 304
 *   /last-modified  max-age=0 with Last-Modified; If-Modified-Since gets 304
 *   /cookie         max-age=60 with Set-Cookie
 *   /big?n=N        max-age=60, N bytes
 *   /slow           max-age=60, answered after 800 ms
 *   /drip           max-age=60, 50000 bytes declared; sends 1000 and holds while `hold` is set
 *   /stale-if-error?w=N  max-age=0, stale-if-error=N, ETag "s1" (&mr=1 adds must-revalidate)
 * While `failWith` is set, every path answers with that status (a failing origin); while
 * `stall` is set, requests get no answer at all.
 * With `h2`, the TLS origin speaks HTTP/2 (and HTTP/1.1 to clients that only offer that).
 */
export interface CacheOrigin {
  readonly port: number;
  /** Requests seen per path+query. */
  hits(path: string): number;
  /** Request headers of the last request for a path. */
  lastHeaders(path: string): http.IncomingHttpHeaders | undefined;
  /** HTTP version of the last request for a path ('1.1' or '2.0'). */
  lastVersion(path: string): string | undefined;
  hold: boolean;
  version: number;
  /** Status every request gets while set (a failing origin); null = normal. */
  failWith: number | null;
  stall: boolean;
  close(): Promise<void>;
}

const LAST_MODIFIED = 'Wed, 01 Jan 2025 00:00:00 GMT';

export async function startCacheOrigin(tls?: { cert: string; key: string; h2?: boolean }): Promise<CacheOrigin> {
  const counts = new Map<string, number>();
  const headers = new Map<string, http.IncomingHttpHeaders>();
  const versions = new Map<string, string>();
  const state: { hold: boolean; version: number; failWith: number | null; stall: boolean } = { hold: true, version: 1, failWith: null, stall: false };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const n = (counts.get(url) ?? 0) + 1;
    counts.set(url, n);
    headers.set(url, req.headers);
    versions.set(url, req.httpVersion);
    const path = new URL(url, 'http://origin').pathname;
    const send = (status: number, extra: http.OutgoingHttpHeaders, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (state.stall) return;
    if (state.failWith !== null) {
      send(state.failWith, {}, 'origin failing\n');
      return;
    }
    switch (path) {
      case '/max-age':
        send(200, { 'cache-control': 'max-age=60' }, `max-age #${n}\n`);
        return;
      case '/slow':
        setTimeout(() => send(200, { 'cache-control': 'max-age=60' }, `slow #${n}\n`), 800);
        return;
      case '/no-store':
        send(200, { 'cache-control': 'no-store' }, `no-store #${n}\n`);
        return;
      case '/private':
        send(200, { 'cache-control': 'private, max-age=60' }, `private #${n}\n`);
        return;
      case '/public':
        send(200, { 'cache-control': 'public, max-age=60' }, `public #${n} for ${req.headers.authorization ?? 'nobody'}\n`);
        return;
      case '/vary':
        send(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }, `vary #${n} lang=${req.headers['accept-language'] ?? 'none'}\n`);
        return;
      case '/etag':
        if ((req.headers['if-none-match'] ?? '').split(',').some((tag) => tag.trim() === '"v1"')) {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=0' });
          res.end();
          return;
        }
        send(200, { 'cache-control': 'max-age=0', etag: '"v1"' }, `etag #${n}\n`);
        return;
      case '/versioned': {
        const etag = `"v${state.version}"`;
        if ((req.headers['if-none-match'] ?? '').split(',').some((tag) => tag.trim() === etag)) {
          res.writeHead(304, { etag, 'cache-control': 'max-age=0' });
          res.end();
          return;
        }
        send(200, { 'cache-control': 'max-age=0', etag }, `versioned v${state.version} #${n}\n`);
        return;
      }
      case '/last-modified':
        if (req.headers['if-modified-since'] === LAST_MODIFIED) {
          res.writeHead(304, { 'cache-control': 'max-age=0' });
          res.end();
          return;
        }
        send(200, { 'cache-control': 'max-age=0', 'last-modified': LAST_MODIFIED }, `last-modified #${n}\n`);
        return;
      case '/stale-if-error': {
        const params = new URL(url, 'http://origin').searchParams;
        const mustRevalidate = params.get('mr') === '1' ? ', must-revalidate' : '';
        send(200, { 'cache-control': `max-age=0, stale-if-error=${params.get('w') ?? '60'}${mustRevalidate}`, etag: '"s1"' }, `stale-if-error #${n}\n`);
        return;
      }
      case '/cookie':
        send(200, { 'cache-control': 'max-age=60', 'set-cookie': 'session=SECRET; Path=/' }, `cookie #${n}\n`);
        return;
      case '/big': {
        const size = Number(new URL(url, 'http://origin').searchParams.get('n') ?? '0');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'cache-control': 'max-age=60' });
        res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(size, 0x61));
        return;
      }
      case '/drip': {
        const total = 50_000;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total, 'cache-control': 'max-age=60' });
        if (state.hold) {
          // Part of the body, then nothing until the connection goes away.
          res.write(Buffer.alloc(1000, 0x62));
          return;
        }
        res.end(Buffer.alloc(total, 0x62));
        return;
      }
      default:
        send(404, {}, 'not found\n');
        return;
    }
  };
  const sockets = new Set<Socket>();
  let server: http.Server | https.Server | http2.Http2SecureServer;
  if (tls?.h2) {
    // The compatibility API takes the same handler (writeHead/write/end, url, headers).
    server = http2.createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: true }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    server.on('secureConnection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  } else {
    server = tls ? https.createServer({ cert: tls.cert, key: tls.key, ALPNProtocols: ['http/1.1'] }, handler) : http.createServer(handler);
  }
  const listening = server;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    hits: (path) => counts.get(path) ?? 0,
    lastHeaders: (path) => headers.get(path),
    lastVersion: (path) => versions.get(path),
    get hold() {
      return state.hold;
    },
    set hold(value: boolean) {
      state.hold = value;
    },
    get version() {
      return state.version;
    },
    set version(value: number) {
      state.version = value;
    },
    get stall() {
      return state.stall;
    },
    set stall(value: boolean) {
      state.stall = value;
    },
    get failWith() {
      return state.failWith;
    },
    set failWith(value: number | null) {
      state.failWith = value;
    },
    close: () =>
      new Promise<void>((done) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
