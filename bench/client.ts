import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

/**
 * The load client: raw sockets and a minimal HTTP/1.1 response reader, so the client spends as
 * little of the shared CPU as possible and every proxy is driven by exactly the same code.
 */

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** How a client reaches a target: through a proxy (CONNECT or absolute-form) or directly. */
export interface Route {
  readonly proxy: HostPort | null;
  readonly target: HostPort;
  /** Trust anchors for the certificate the client will see (origin CA, or the proxy's CA). */
  readonly ca: readonly string[];
}

const TIMEOUT_MS = 30_000;

function withTimeout<T>(promise: Promise<T>, what: string, socket?: Duplex): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        socket?.destroy();
        reject(new Error(`${what} timed out`));
      }, TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function tcpConnect(to: HostPort): Promise<Socket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: to.host, port: to.port });
      socket.setNoDelay(true);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    }),
    `connect to ${to.host}:${to.port}`,
  );
}

/** Opens a CONNECT tunnel and resolves with the socket once the proxy answered 2xx. */
export async function connectTunnel(proxy: HostPort, target: HostPort): Promise<Socket> {
  const socket = await tcpConnect(proxy);
  const authority = `${target.host}:${target.port}`;
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  return withTimeout(
    new Promise((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.removeListener('data', onData);
        socket.removeListener('error', reject);
        socket.pause();
        const status = head.subarray(0, end).toString('latin1').split(' ')[1];
        if (!status?.startsWith('2')) {
          socket.destroy();
          reject(new Error(`CONNECT ${authority} answered ${head.subarray(0, end).toString('latin1').split('\r\n')[0]}`));
          return;
        }
        const rest = head.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        resolve(socket);
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error(`proxy closed the CONNECT to ${authority}`)));
    }),
    `CONNECT ${authority}`,
    socket,
  );
}

/** TLS to the target, through a CONNECT tunnel when the route has a proxy. */
export async function openTls(route: Route, servername = route.target.host): Promise<tls.TLSSocket> {
  const raw = route.proxy ? await connectTunnel(route.proxy, route.target) : await tcpConnect(route.target);
  return withTimeout(
    new Promise((resolve, reject) => {
      // An address gets no SNI (RFC 6066) and is checked against the certificate's IP SANs.
      const name = net.isIP(servername) ? { host: servername } : { servername };
      const socket = tls.connect({ socket: raw, ...name, ca: [...route.ca], ALPNProtocols: ['http/1.1'] });
      socket.once('secureConnect', () => {
        socket.removeListener('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    }),
    `TLS with ${servername}`,
    raw,
  );
}

/**
 * Sequential HTTP/1.1 requests on one connection. The body is counted, never kept. Handles
 * Content-Length and chunked responses (some proxies re-frame bodies).
 */
export class HttpConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: { resolve: (bytes: number) => void; reject: (err: Error) => void } | null = null;
  private state: 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailer' = 'head';
  private remaining = 0;
  private bodyBytes = 0;
  private failure: Error | null = null;

  constructor(readonly socket: Duplex) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
    socket.resume();
  }

  /** Sends `head` (a full request without body) and resolves with the response body's length. */
  request(head: Buffer | string): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.state = 'head';
      this.bodyBytes = 0;
      this.socket.write(head);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const pending = this.pending;
    this.pending = null;
    pending?.reject(err);
  }

  private done(): void {
    const pending = this.pending;
    this.pending = null;
    pending?.resolve(this.bodyBytes);
  }

  private onData(chunk: Buffer): void {
    if (!this.pending) return;
    if (this.state === 'length') {
      // The hot path of bulk transfers: count and drop.
      if (chunk.length < this.remaining) {
        this.remaining -= chunk.length;
        this.bodyBytes += chunk.length;
        return;
      }
      this.bodyBytes += this.remaining;
      this.remaining = 0;
      this.done();
      return;
    }
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.parse();
  }

  private parse(): void {
    for (;;) {
      if (!this.pending) return;
      switch (this.state) {
        case 'head': {
          const end = this.buffer.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = this.buffer.subarray(0, end).toString('latin1');
          this.buffer = this.buffer.subarray(end + 4);
          const status = Number(head.slice(9, 12));
          if (status < 200 || status >= 300) {
            this.fail(new Error(`HTTP ${head.split('\r\n')[0]}`));
            return;
          }
          const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (chunked) this.state = 'chunk-size';
          else {
            this.state = 'length';
            this.remaining = length ? Number(length[1]) : 0;
            const take = Math.min(this.remaining, this.buffer.length);
            this.remaining -= take;
            this.bodyBytes += take;
            this.buffer = Buffer.alloc(0);
            if (this.remaining === 0) this.done();
            return;
          }
          break;
        }
        case 'chunk-size': {
          const end = this.buffer.indexOf('\r\n');
          if (end < 0) return;
          const size = parseInt(this.buffer.subarray(0, end).toString('latin1'), 16);
          this.buffer = this.buffer.subarray(end + 2);
          if (size === 0) this.state = 'trailer';
          else {
            this.remaining = size;
            this.state = 'chunk-data';
          }
          break;
        }
        case 'chunk-data': {
          const take = Math.min(this.remaining, this.buffer.length);
          this.remaining -= take;
          this.bodyBytes += take;
          this.buffer = this.buffer.subarray(take);
          if (this.remaining > 0) return;
          this.state = 'chunk-crlf';
          break;
        }
        case 'chunk-crlf':
          if (this.buffer.length < 2) return;
          this.buffer = this.buffer.subarray(2);
          this.state = 'chunk-size';
          break;
        case 'trailer': {
          const end = this.buffer.indexOf('\r\n');
          if (end < 0) return;
          this.buffer = this.buffer.subarray(end + 2);
          if (end === 0) {
            this.done();
            return;
          }
          break;
        }
        case 'length':
          return;
      }
    }
  }
}

export function getRequest(path: string, host: string, close = false): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: tollgate-bench\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
}
