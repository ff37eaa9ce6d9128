import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { startTestGateway, type TestGateway, type TestGatewayOptions } from './gateway';
import { issue, tempDir, writePem } from './pki';

/**
 * The setup of the outside security review ("close the bypasses"): an inspect rule `storage`
 * for storage.test with HTTP rules `public` (allow /public/**) and `no-admin` (deny /admin/**)
 * and a denying AWS-key DLP detector; a second inspect rule `others` for other.test,
 * victim.test and evil.test without HTTP rules. The origins pick their certificate by SNI and
 * record what they were asked, by whom (SNI, Host, :authority) and with which body, so a test
 * can see what reached them past the rules.
 */
export const LAB_NAMES = ['storage.test', 'other.test', 'victim.test', 'evil.test'] as const;

export const LAB_POLICY = `rules:
  - name: storage
    match: storage.test
    action: inspect
    http:
      - name: public
        request: { path: "/public/**" }
        action: allow
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
        reason: the admin area is off limits
    dlp:
      detectors: [aws_access_key_id]
      action: deny
  - name: others
    match: [other.test, victim.test, evil.test]
    action: inspect
`;

/** An AWS access key id as the DLP detector recognises it (AWS's documented example). */
export const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';

export interface SeenByLab {
  readonly scheme: 'http' | 'https';
  readonly sni: string | null;
  readonly host: string | null;
  readonly authority: string | null;
  readonly method: string;
  readonly path: string;
  readonly httpVersion: string;
  readonly headers: http.IncomingHttpHeaders;
  /** The body as received (latin1), and whether the message ended properly. */
  body: string;
  complete: boolean;
}

export interface LabOrigin {
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly caFile: string;
  readonly seen: SeenByLab[];
  /** Requests whose path (query stripped) is `path`. */
  requestsFor(path: string): SeenByLab[];
  close(): Promise<void>;
}

/**
 * Answers every request with JSON naming what it saw. Query parameters shape the answer:
 * `cc` a Cache-Control value, `vary` a Vary value, `status` the status; `stream=N` instead
 * streams N bytes without a Content-Length (chunked on HTTP/1.1, close-delimited on 1.0).
 */
function answer(seen: SeenByLab, req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://lab');
  const stream = url.searchParams.get('stream');
  if (stream !== null) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const out = res as NodeJS.WritableStream;
    let left = Number(stream);
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, 4096);
        left -= n;
        if (!out.write(Buffer.alloc(n, 0x61))) {
          out.once('drain', pump);
          return;
        }
      }
      out.end();
    };
    pump();
    return;
  }
  const body = JSON.stringify({ sni: seen.sni, host: seen.host, authority: seen.authority, path: seen.path, method: seen.method, tenant: req.headers['x-tenant'] ?? null, length: seen.body.length });
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  const cc = url.searchParams.get('cc');
  if (cc) headers['cache-control'] = cc;
  const vary = url.searchParams.get('vary');
  if (vary) headers['vary'] = vary;
  res.writeHead(Number(url.searchParams.get('status') ?? '200'), headers);
  if (seen.method === 'HEAD') res.end();
  else res.end(body);
}

function record(seenList: SeenByLab[], scheme: 'http' | 'https', sni: string | null, req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const seen: SeenByLab = {
    scheme,
    sni,
    host: typeof req.headers.host === 'string' ? req.headers.host : null,
    authority: req instanceof http2.Http2ServerRequest ? req.authority : null,
    method: req.method ?? '',
    path: req.url ?? '',
    httpVersion: req.httpVersion,
    headers: req.headers as http.IncomingHttpHeaders,
    body: '',
    complete: false,
  };
  seenList.push(seen);
  req.on('data', (chunk: Buffer) => {
    if (seen.body.length < 1 << 20) seen.body += chunk.toString('latin1');
  });
  req.on('error', () => undefined);
  req.on('end', () => {
    seen.complete = true;
    answer(seen, req, res);
  });
}

export async function startLabOrigin(): Promise<LabOrigin> {
  const dir = tempDir('lab');
  const root = issue({ commonName: 'lab origin root', isCa: true });
  const contexts = new Map<string, tls.SecureContext>();
  for (const name of LAB_NAMES) {
    const leaf = issue({ commonName: name, dnsNames: [name], issuer: root });
    contexts.set(name, tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem }));
  }
  const fallback = issue({ commonName: 'no-sni.lab', dnsNames: ['no-sni.lab'], issuer: root });
  const seen: SeenByLab[] = [];
  const httpsServer = http2.createSecureServer(
    {
      cert: fallback.certPem,
      key: fallback.keyPem,
      allowHTTP1: true,
      SNICallback: (servername, cb) => cb(null, contexts.get(servername.toLowerCase())),
    },
    (req, res) => {
      const socket = (req instanceof http2.Http2ServerRequest ? req.stream.session?.socket : (req as unknown as http.IncomingMessage).socket) as TLSSocket | undefined;
      const sni = socket && typeof socket.servername === 'string' ? socket.servername : null;
      record(seen, 'https', sni, req, res);
    },
  );
  httpsServer.on('tlsClientError', () => undefined);
  httpsServer.on('sessionError', () => undefined);
  const httpServer = http.createServer((req, res) => record(seen, 'http', null, req, res));
  httpServer.on('clientError', (_err, socket: Socket) => socket.destroy());
  await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    httpsPort: (httpsServer.address() as AddressInfo).port,
    httpPort: (httpServer.address() as AddressInfo).port,
    caFile: writePem(dir, 'lab-root.pem', root.certPem),
    seen,
    requestsFor: (path) => seen.filter((s) => s.path.split('?')[0] === path),
    close: async () => {
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await new Promise<void>((resolve) => httpsServer.close(() => resolve()));
    },
  };
}

/** A gateway with the review's policy in front of a lab origin. */
export function startLabGateway(lab: LabOrigin, options: Partial<TestGatewayOptions> = {}): Promise<TestGateway> {
  return startTestGateway({
    allowedPorts: { tunnel: [lab.httpsPort], http: [lab.httpPort] },
    hostNames: ['storage.test', 'victim.test', 'evil.test'],
    upstreamCaFile: lab.caFile,
    policies: { 'lab.yaml': LAB_POLICY },
    ...options,
  });
}

/** What an origin echoes back, parsed from a JSON body; null when the body is not one. */
export function echoed(body: string): { sni: string | null; host: string | null; authority: string | null; path: string; tenant: string | null } | null {
  try {
    return JSON.parse(body) as { sni: string | null; host: string | null; authority: string | null; path: string; tenant: string | null };
  } catch {
    return null;
  }
}
