import { spawn, type ChildProcess } from 'node:child_process';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { issue, tempDir, writePem } from './pki';

/**
 * Origins that fail in one particular way, over HTTP/1.1 or HTTP/2 alike: every origin is a
 * TLS listener offering ALPN [h2, http/1.1], so a gateway's ALPN probe finds h2 and the
 * gateway takes whichever origin leg its client's protocol selects. The TLS is terminated on a
 * plain TCP listener (net.Server + TLSSocket), so a "reset" is a real TCP RST on the raw socket.
 *
 * Faults that happen before any HTTP (refused, connect-stall, untrusted-cert, wrong-host-cert)
 * would also fail the gateway's ALPN probe, and an h2 client would then be served over HTTP/1.1
 * on both sides. So these origins answer normally until `arm()`: probe first (the answer is
 * cached), then break, which is how an HTTP/2 client meets such a fault in production.
 */
export const FAULTS = ['refused', 'connect-stall', 'reset-mid-headers', 'reset-mid-body', 'slow-headers', 'slow-body', 'untrusted-cert', 'wrong-host-cert', 'many-header-fields'] as const;
export type Fault = (typeof FAULTS)[number];

export interface FaultTimings {
  /** slow-headers: how long the response head is held back. */
  readonly headersDelayMs: number;
  /** slow-body: how long the body stalls after its first bytes (then it completes). */
  readonly bodyStallMs: number;
}

export interface FaultOrigin {
  readonly fault: Fault;
  readonly port: number;
  /** Switch from answering normally to the fault (no-op for faults inside a response). */
  arm(): Promise<void>;
  close(): Promise<void>;
}

/** Trust and certificates shared by all fault origins; `caFile` is what the gateway trusts. */
export interface FaultPki {
  readonly name: string;
  readonly caFile: string;
  readonly good: tls.SecureContext;
  /** Self-signed for `name`: no trusted issuer. */
  readonly untrusted: tls.SecureContext;
  /** Issued by the trusted root, for another name. */
  readonly wrongHost: tls.SecureContext;
}

export function faultPki(name: string): FaultPki {
  const root = issue({ commonName: 'fault origin root', isCa: true });
  const context = (leaf: { certPem: string; keyPem: string }): tls.SecureContext => tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
  return {
    name,
    caFile: writePem(tempDir('faults'), 'fault-root.pem', root.certPem),
    good: context(issue({ commonName: name, dnsNames: [name], issuer: root })),
    untrusted: context(issue({ commonName: name, dnsNames: [name] })),
    wrongHost: context(issue({ commonName: 'elsewhere.test', dnsNames: ['elsewhere.test'], issuer: root })),
  };
}

const BODY_BYTES = 1000;
/** Response header fields of the many-header-fields origin: more than Node's HTTP/2 default of 128. */
export const MANY_HEADER_FIELDS = 200;
const FIRST_BYTES = 100;
/** Time for bytes already written to reach the peer before the reset that follows them. */
const FLUSH_MS = 100;

function reset(raw: net.Socket): void {
  try {
    raw.resetAndDestroy();
  } catch {
    raw.destroy();
  }
}

type Respond = (res: ServerResponse | http2.Http2ServerResponse, raw: net.Socket) => void;

function responder(fault: Fault, timings: FaultTimings): Respond {
  const head = { 'content-type': 'application/octet-stream', 'content-length': String(BODY_BYTES) };
  switch (fault) {
    case 'reset-mid-body':
      return (res, raw) => {
        res.writeHead(200, head);
        (res as NodeJS.WritableStream).write(Buffer.alloc(FIRST_BYTES, 0x61), () => setTimeout(() => reset(raw), FLUSH_MS));
      };
    case 'slow-headers':
      return (res) => {
        setTimeout(() => {
          if (!res.writableEnded && !res.destroyed) {
            res.writeHead(200, head);
            res.end(Buffer.alloc(BODY_BYTES, 0x61));
          }
        }, timings.headersDelayMs);
      };
    case 'slow-body':
      return (res) => {
        res.writeHead(200, head);
        (res as NodeJS.WritableStream).write(Buffer.alloc(FIRST_BYTES, 0x61));
        setTimeout(() => !res.destroyed && res.end(Buffer.alloc(BODY_BYTES - FIRST_BYTES, 0x61)), timings.bodyStallMs);
      };
    case 'many-header-fields':
      // Not a fault, but where the two legs' limits differed (Node's HTTP/2 client: 128 fields).
      return (res) => {
        const many: Record<string, string> = { ...head };
        for (let i = 0; i < MANY_HEADER_FIELDS; i++) many[`x-field-${i}`] = String(i);
        res.writeHead(200, many);
        res.end(Buffer.alloc(BODY_BYTES, 0x61));
      };
    default:
      return (res) => {
        res.writeHead(200, head);
        res.end(Buffer.alloc(BODY_BYTES, 0x61));
      };
  }
}

/** An HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload (RFC 9113 4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK: `:status: 200` (static index 8), `content-type: text/plain` (literal, name index 31). */
const H2_HEAD_BLOCK = Buffer.concat([Buffer.from([0x88, 0x5f, 0x0a]), Buffer.from('text/plain')]);
const H2_PREFACE_BYTES = 24;

/**
 * Starts a response head and resets the connection in the middle of it. HTTP/1.1: part of the
 * status line and fields. HTTP/2 (Node's server cannot stop inside a frame): a minimal server
 * side that sends SETTINGS, acknowledges the client's, and answers the first HEADERS frame with
 * a prefix of a HEADERS frame.
 */
function resetMidHeaders(secure: TLSSocket, raw: net.Socket): void {
  let buffered = Buffer.alloc(0);
  const cut = (partial: Buffer): void => void secure.write(partial, () => setTimeout(() => reset(raw), FLUSH_MS));
  if (secure.alpnProtocol !== 'h2') {
    secure.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.includes('\r\n\r\n')) cut(Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/pl'));
    });
    return;
  }
  let prefaceSeen = false;
  let answered = false;
  secure.write(frame(0x4, 0, 0));
  secure.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (!prefaceSeen) {
      if (buffered.length < H2_PREFACE_BYTES) return;
      buffered = buffered.subarray(H2_PREFACE_BYTES);
      prefaceSeen = true;
    }
    while (buffered.length >= 9 && buffered.length >= 9 + buffered.readUIntBE(0, 3)) {
      const [type, flags, stream] = [buffered[3]!, buffered[4]!, buffered.readUInt32BE(5) & 0x7fffffff];
      buffered = buffered.subarray(9 + buffered.readUIntBE(0, 3));
      if (type === 0x4 && (flags & 0x1) === 0) secure.write(frame(0x4, 0x1, 0));
      if (type === 0x1 && !answered) {
        answered = true;
        // The frame header and the first bytes of its header block, END_HEADERS set.
        cut(frame(0x1, 0x4, stream, H2_HEAD_BLOCK).subarray(0, 12));
      }
    }
  });
}

/**
 * A TCP listener that blackholes connections: a backlog of 0 already filled by one connection
 * that is never accepted, so the kernel drops further SYNs and connecting hangs (python3, since
 * Node accepts every connection). It takes over `port` once the Node listener released it.
 */
async function startBlackhole(port: number): Promise<ChildProcess> {
  const script = [
    'import socket, time',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    'for _ in range(100):',
    '    try:',
    `        s.bind(("127.0.0.1", ${port})); break`,
    '    except OSError: time.sleep(0.05)',
    's.listen(0)',
    'c = socket.socket(); c.connect(s.getsockname())',
    'print("ready", flush=True)',
    'time.sleep(300)',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`blackhole exited with ${code}`)));
  });
  return child;
}

export async function startFaultOrigin(fault: Fault, pki: FaultPki, timings: FaultTimings): Promise<FaultOrigin> {
  let armed = false;
  let blackhole: ChildProcess | null = null;
  const raws = new WeakMap<object, net.Socket>();
  const respond = responder(fault, timings);
  const onRequest = (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse): void => {
    const raw = raws.get(req instanceof http2.Http2ServerRequest ? req.stream.session! : req.socket);
    req.resume();
    if (raw) respond(res, raw);
  };
  const h1 = http.createServer(onRequest);
  h1.on('clientError', (_err, socket: net.Socket) => socket.destroy());
  const h2 = http2.createServer({}, onRequest);
  h2.on('sessionError', () => undefined);
  let handingOver: net.Socket | null = null;
  h2.on('session', (session: http2.ServerHttp2Session) => {
    if (handingOver) raws.set(session, handingOver);
    session.on('error', () => undefined);
  });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => undefined);
    const certFault = armed && (fault === 'untrusted-cert' || fault === 'wrong-host-cert');
    const secureContext = certFault ? (fault === 'untrusted-cert' ? pki.untrusted : pki.wrongHost) : pki.good;
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ['h2', 'http/1.1'] });
    secure.on('error', () => undefined);
    secure.once('secure', () => {
      if (fault === 'reset-mid-headers') return resetMidHeaders(secure, raw);
      if (secure.alpnProtocol !== 'h2') {
        raws.set(secure, raw);
        h1.emit('connection', secure);
        return;
      }
      // As in the gateway's inspector: an http2 session on a server-side TLSSocket waits for a
      // 'secureConnect' that only client sockets emit unless this flag is cleared.
      (secure as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      handingOver = raw;
      try {
        h2.emit('connection', secure);
      } finally {
        handingOver = null;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stopListening = (): Promise<void> =>
    new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  return {
    fault,
    port,
    arm: async () => {
      armed = true;
      // A certificate swap reaches only new connections; like an origin restarted with its new
      // certificate, the connections made while healthy (the gateway's ALPN handshake, which
      // it keeps for the first request) are closed.
      if (fault === 'untrusted-cert' || fault === 'wrong-host-cert') for (const socket of sockets) socket.destroy();
      if (fault === 'refused' || fault === 'connect-stall') await stopListening();
      if (fault === 'connect-stall') blackhole = await startBlackhole(port);
    },
    close: async () => {
      blackhole?.kill('SIGKILL');
      await stopListening();
    },
  };
}
