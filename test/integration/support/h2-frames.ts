import tls from 'node:tls';
import { connectTunnel } from './h2-client';

/**
 * Raw HTTP/2 frames (RFC 9113 4.1) over TLS through a CONNECT tunnel, for tests that must send
 * what no HTTP/2 client library would: a header block cut into pieces and trickled, frame bytes
 * written a few at a time.
 */
export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, CONTINUATION: 0x9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK (RFC 7541) literal without indexing, name from the static table, value not Huffman-coded. */
function literal(nameIndex: number, value: string): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  if (nameIndex > 14 || bytes.length > 126) throw new Error('literal too long for this tiny encoder');
  return Buffer.concat([Buffer.from([nameIndex, bytes.length]), bytes]);
}

/** A request header block: static entries 2 (:method GET) or 3 (POST), 7 (:scheme https), then :path and :authority. */
export function requestBlock(method: 'GET' | 'POST', path: string, authority: string): Buffer {
  return Buffer.concat([Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x87]), literal(4, path), literal(1, authority)]);
}

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface RawH2Connection {
  readonly socket: tls.TLSSocket;
  /** Frames the gateway sent so far, in order. */
  readonly frames: ReceivedFrame[];
  readonly closed: Promise<void>;
  isClosed(): boolean;
  send(bytes: Buffer): void;
}

/**
 * Opens a CONNECT tunnel, a TLS session offering only h2 (trusting `ca`), and sends the client
 * preface with an empty SETTINGS frame, and returns once SETTINGS were exchanged both ways.
 */
export async function openRawH2(proxyPort: number, name: string, port: number, ca: string): Promise<RawH2Connection> {
  const tunnel = await connectTunnel(proxyPort, `${name}:${port}`);
  const socket = tls.connect({ socket: tunnel, servername: name, ALPNProtocols: ['h2'], ca });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN ${String(socket.alpnProtocol)}, not h2`);
  socket.on('error', () => undefined);
  const frames: ReceivedFrame[] = [];
  let pending = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const received = { type: pending[3]!, flags: pending[4]!, streamId: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) };
      pending = pending.subarray(9 + length);
      frames.push(received);
    }
  });
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  socket.write(Buffer.concat([CLIENT_PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  // The SETTINGS exchange is finished before the caller writes anything: an acknowledgement sent
  // later could land inside a header block, which is a connection error (RFC 9113 6.10).
  const deadline = Date.now() + 5000;
  const settled = (): boolean => frames.some((f) => f.type === FRAME.SETTINGS && f.flags === 0) && frames.some((f) => f.type === FRAME.SETTINGS && f.flags === FLAG.ACK);
  while (!settled() && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (!settled()) throw new Error('no SETTINGS exchange with the gateway');
  socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
  return {
    socket,
    frames,
    closed: closedPromise,
    isClosed: () => closed,
    send: (bytes) => {
      if (socket.writable) socket.write(bytes);
    },
  };
}

/** Whether the connection closed within `ms` (bounded wait; false when still open). */
export async function closesWithin(connection: RawH2Connection, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([connection.closed, timeout]);
  clearTimeout(timer);
  return connection.isClosed();
}
