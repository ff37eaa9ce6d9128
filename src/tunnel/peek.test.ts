import net, { type AddressInfo, type Socket } from 'node:net';
import { peekClientBytes } from './peek';

/** A connected pair of real sockets on loopback: [client side, server side]. */
async function socketPair(): Promise<[Socket, Socket, () => void]> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const peer = await accepted;
  return [client, peer, () => server.close()];
}

describe('peekClientBytes and an origin that speaks first', () => {
  test('a silent client: aborting originSpoke ends the peek with an empty timeout at once', async () => {
    const [client, peer, close] = await socketPair();
    try {
      const spoke = new AbortController();
      const peeking = peekClientBytes(peer, Buffer.alloc(0), { timeoutMs: 5000, originSpoke: spoke.signal });
      setTimeout(() => spoke.abort(), 20);
      const peek = await peeking;
      expect(peek).toEqual({ kind: 'timeout', bytes: Buffer.alloc(0) });
      // The socket is left paused with nothing consumed: later bytes are still there to read.
      client.write('a1 LOGIN\r\n');
      const reading = new Promise<Buffer>((resolve) => peer.once('data', resolve));
      peer.resume();
      const later = await reading;
      expect(later.toString()).toBe('a1 LOGIN\r\n');
    } finally {
      client.destroy();
      peer.destroy();
      close();
    }
  });

  test('a client part-way through its first bytes is still read to the end', async () => {
    const [client, peer, close] = await socketPair();
    try {
      const spoke = new AbortController();
      client.write('GE');
      const peeking = peekClientBytes(peer, Buffer.alloc(0), { timeoutMs: 5000, originSpoke: spoke.signal });
      setTimeout(() => {
        spoke.abort();
        setTimeout(() => client.write('T / HTTP/1.1\r\n'), 20);
      }, 50);
      const peek = await peeking;
      expect(peek).toMatchObject({ kind: 'opaque', firstBytes: 'http' });
      expect(peek.bytes.toString()).toMatch(/^GET /);
    } finally {
      client.destroy();
      peer.destroy();
      close();
    }
  });
});
