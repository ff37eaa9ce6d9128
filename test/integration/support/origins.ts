import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * Local origins for integration tests, on 127.0.0.1 only. Endpoints:
 *   /hello            "hello from <name>"
 *   /echo             JSON: method, url, headers, body length and sha256 (reads the whole body)
 *   /bytes?n=N        N bytes streamed in 64 KiB chunks
 *   /reset            sends headers and part of a body, then resets the connection
 *   /slow?ms=N        answers after N ms
 *   /cookie           sets cookies (Set-Cookie values are secrets in the audit tests)
 * Every request is counted and remembered (method, url, headers) for assertions.
 */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly httpVersion: string;
}

export interface Origin {
  readonly name: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

function handle(name: string, seen: SeenRequest[], req: IncomingMessage, res: ServerResponse): void {
  seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, httpVersion: req.httpVersion });
  const url = new URL(req.url ?? '/', 'http://origin');
  switch (url.pathname) {
    case '/hello': {
      const body = `hello from ${name}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    case '/echo': {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, length, sha256: hash.digest('hex') });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    case '/bytes': {
      const total = Number(url.searchParams.get('n') ?? '0');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    case '/reset': {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1_000_000 });
      res.write(Buffer.alloc(1000, 0x62));
      // resetAndDestroy needs a TCP handle; a TLS socket's is not one (https origins just close).
      setTimeout(() => {
        try {
          req.socket.resetAndDestroy();
        } catch {
          req.socket.destroy();
        }
      }, 50);
      return;
    }
    case '/cookie': {
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': ['session=SECRET-SET-COOKIE-VALUE; Path=/', 'other=x'] });
      res.end('cookie set\n');
      return;
    }
    case '/slow': {
      const ms = Number(url.searchParams.get('ms') ?? '1000');
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('slow\n');
      }, ms);
      return;
    }
    default:
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
  }
}

function listen(server: http.Server, name: string, seen: SeenRequest[]): Promise<Origin> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        name,
        port,
        seen,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

export function startHttpOrigin(name: string): Promise<Origin> {
  const seen: SeenRequest[] = [];
  return listen(
    http.createServer((req, res) => handle(name, seen, req, res)),
    name,
    seen,
  );
}

export function startHttpsOrigin(name: string, tlsOptions: { cert: string; key: string }): Promise<Origin> {
  const seen: SeenRequest[] = [];
  const server = https.createServer({ ...tlsOptions, ALPNProtocols: ['http/1.1'] }, (req, res) => handle(name, seen, req, res));
  // Handshake failures are expected in bad-certificate tests.
  server.on('tlsClientError', () => undefined);
  return listen(server, name, seen);
}
