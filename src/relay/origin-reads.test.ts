import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { OriginReads } from './origin-reads';
import { Relay } from './relay';

/**
 * A splice whose origin socket reads into reused buffers, over real loopback sockets:
 * client <-> [accepted socket | Relay | origin socket] <-> origin server.
 */

interface Rig {
  /** The client's own socket (what a browser would hold). */
  readonly client: net.Socket;
  /** The origin server's side of the origin connection. */
  readonly originPeer: net.Socket;
  readonly relay: Relay;
  close(): Promise<void>;
}

async function rig(onOrigin: (peer: net.Socket) => void, attachAfterMs = 0): Promise<Rig> {
  let originPeer!: net.Socket;
  const originServer = net.createServer({ allowHalfOpen: true }, (peer) => {
    originPeer = peer;
    onOrigin(peer);
  });
  await new Promise<void>((resolve) => originServer.listen(0, '127.0.0.1', resolve));
  const front = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => front.once('connection', resolve));
  const client = net.connect({ port: (front.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const clientSide = await accepted;
  const reads = new OriginReads();
  const origin = net.connect({ port: (originServer.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true, onread: reads.onread });
  await new Promise((resolve) => origin.once('connect', resolve));
  const relay = new Relay(clientSide, origin, 10_000, reads);
  // Bytes the origin sends before the relay starts are held, then delivered in order.
  if (attachAfterMs > 0) await new Promise((r) => setTimeout(r, attachAfterMs));
  relay.startUpstream(Buffer.alloc(0));
  return {
    client,
    get originPeer() {
      return originPeer;
    },
    relay,
    close: async () => {
      client.destroy();
      originPeer?.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await new Promise<void>((resolve) => originServer.close(() => resolve()));
    },
  };
}

function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('a splice reading the origin into reused buffers', () => {
  test('a greeting sent before the relay starts arrives first and intact (server-first protocols)', async () => {
    const r = await rig((peer) => peer.end('* OK IMAP4rev1 ready\r\n'), 100);
    try {
      expect((await collect(r.client)).toString()).toBe('* OK IMAP4rev1 ready\r\n');
    } finally {
      await r.close();
    }
  });

  test('32 MiB through a client that stops reading for a while: every byte, in order, and the origin held back meanwhile', async () => {
    const payload = randomBytes(32 * 1024 * 1024);
    let originWrites: Promise<void> = Promise.resolve();
    const r = await rig((peer) => {
      originWrites = new Promise((resolve) => peer.end(payload, () => resolve()));
    });
    try {
      r.client.pause();
      // While the client reads nothing, the origin cannot get far: kernel buffers and one
      // write queue, not 32 MiB, sit between them.
      await new Promise((res) => setTimeout(res, 300));
      expect(r.originPeer.writableLength).toBeGreaterThan(8 * 1024 * 1024);
      const received = collect(r.client);
      r.client.resume();
      const got = await received;
      await originWrites;
      expect(got.length).toBe(payload.length);
      expect(sha(got)).toBe(sha(payload));
    } finally {
      await r.close();
    }
  });

  test('half-close: the origin finishing its side does not stop the client sending', async () => {
    const fromClient: Buffer[] = [];
    const r = await rig((peer) => {
      peer.on('data', (c: Buffer) => fromClient.push(c));
      peer.end('bye from origin');
    });
    try {
      expect((await collect(r.client)).toString()).toBe('bye from origin');
      r.client.end('still talking');
      await new Promise<void>((resolve) => r.originPeer.once('end', () => resolve()));
      expect(Buffer.concat(fromClient).toString()).toBe('still talking');
      const result = await r.relay.result();
      expect(result.close).toBe('upstream-closed');
      expect(result.bytesDown).toBe('bye from origin'.length);
    } finally {
      await r.close();
    }
  });
});
