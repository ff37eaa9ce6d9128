import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import tls from 'node:tls';

/** Opens a CONNECT tunnel through the explicit proxy and returns the raw socket. */
export function connectTunnel(proxyPort: number, authority: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority });
    req.once('connect', (res, socket) => (res.statusCode === 200 ? resolve(socket) : reject(new Error(`CONNECT ${res.statusCode}`))));
    req.once('error', reject);
    req.end();
  });
}

/** Node's own HTTP/2 client over a TLS session inside a CONNECT tunnel through the gateway. */
export async function h2Session(proxyPort: number, name: string, port: number, ca: string): Promise<{ session: http2.ClientHttp2Session; alpn: string | false | null }> {
  const tunnel = await connectTunnel(proxyPort, `${name}:${port}`);
  const secure = tls.connect({ socket: tunnel, servername: name, ALPNProtocols: ['h2'], ca });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', reject);
  });
  // Room for responses with many header fields (Node's default is 128), as browsers allow.
  const session = http2.connect(`https://${name}:${port}`, { createConnection: () => secure, maxHeaderListPairs: 1000 });
  session.on('error', () => undefined);
  return { session, alpn: secure.alpnProtocol };
}

export interface H2Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: http2.IncomingHttpHeaders;
}

/** One request on an HTTP/2 session, bounded in time. */
export function h2Request(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}, timeoutMs = 10_000): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ...headers });
    let body = '';
    let head: http2.IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no complete response for ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.setEncoding('utf8');
    stream.on('response', (h) => (head = h));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(head[':status']), body, headers: head });
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.end();
  });
}
