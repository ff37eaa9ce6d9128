import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { type FramingViolation, guardRequestFraming } from './request-framing-guard';

/**
 * The guard on a real http.Server over loopback: what reaches Node's parser, what reaches a
 * tunnel or an upgraded connection, and in which order a refusal is written.
 */
interface Harness {
  readonly port: number;
  readonly violations: FramingViolation[];
  /** Bytes handed to the 'connect' / 'upgrade' handler, head included, per connection. */
  readonly switched: string[];
  readonly requests: string[];
  close(): Promise<void>;
}

async function start(options: { upgrade: boolean; slowPath?: string; maxHeaderBytes?: number }): Promise<Harness> {
  const violations: FramingViolation[] = [];
  const switched: string[] = [];
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    const delay = req.url === options.slowPath ? 300 : 0;
    req.on('end', () => setTimeout(() => res.end(`ok ${req.url}`), delay));
  });
  guardRequestFraming(server, { maxHeaderBytes: options.maxHeaderBytes ?? 16 * 1024 }, (socket, violation) => {
    violations.push(violation);
    if (!socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  // Sockets that left HTTP are no longer the server's to close.
  const left = new Set<Socket>();
  const collect = (socket: Socket, head: Buffer): void => {
    left.add(socket);
    const index = switched.push(head.toString('latin1')) - 1;
    socket.on('data', (chunk: Buffer) => (switched[index] += chunk.toString('latin1')));
    socket.on('error', () => undefined);
  };
  server.on('connect', (_req, socket: Socket, head: Buffer) => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    collect(socket, head);
  });
  if (options.upgrade) {
    server.on('upgrade', (_req, socket: Socket, head: Buffer) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
      collect(socket, head);
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    violations,
    switched,
    requests,
    close: () => {
      server.closeAllConnections();
      for (const socket of left) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes the parts `gapMs` apart and collects the reply until close or `timeoutMs`. */
function exchange(port: number, parts: readonly string[], gapMs = 50, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', async () => {
      for (const part of parts) {
        if (!socket.writable) break;
        socket.write(part);
        await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

describe('request framing guard on an http.Server', () => {
  let h: Harness;
  afterEach(() => h.close());

  test('after CONNECT the tunnel gets every byte unchecked, in the same write and later', async () => {
    h = await start({ upgrade: true });
    await exchange(h.port, ['CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n\x16\x03\x01 GET  / HTTP/1.1\r\n', 'more  bytes\r\n\r\n'], 50, 400);
    expect(h.violations).toEqual([]);
    expect(h.switched).toEqual(['\x16\x03\x01 GET  / HTTP/1.1\r\nmore  bytes\r\n\r\n']);
  });

  test('after an upgrade the new protocol is not checked', async () => {
    h = await start({ upgrade: true });
    const reply = await exchange(h.port, ['GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n', 'frames  that are not HTTP\r\n'], 50, 400);
    expect(reply).toMatch(/^HTTP\/1\.1 101 /);
    expect(h.violations).toEqual([]);
    expect(h.switched).toEqual(['frames  that are not HTTP\r\n']);
  });

  test('an Upgrade request on a server that serves no upgrades is closed, not left hanging', async () => {
    h = await start({ upgrade: false });
    const reply = await exchange(h.port, ['GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n']);
    expect(reply).toBe('');
    expect(h.requests).toEqual([]);
  });

  test('a bad request line while an earlier response is pending: the refusal comes after that response', async () => {
    h = await start({ upgrade: true, slowPath: '/slow' });
    const reply = await exchange(h.port, ['GET /slow HTTP/1.1\r\nHost: a\r\n\r\n', 'GET  /bad HTTP/1.1\r\nHost: a\r\n\r\n']);
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ok \/slow(HTTP\/1\.1 400 Bad Request\r\n)/);
    expect(h.requests).toEqual(['GET /slow']);
    expect(h.violations).toEqual([{ reason: 'more than one space after the method', tooLarge: false }]);
  });

  test('a chunked body that breaks while its response is not begun: refused at once, and it is that response', async () => {
    h = await start({ upgrade: true });
    const reply = await exchange(h.port, ['POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', 'zz\r\n']);
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(h.requests).toEqual(['POST /upload']);
    expect(h.violations[0]?.reason).toMatch(/size in hex/);
  });

  test('a line past the header limit it was given is refused as too large, even where Node would take it', async () => {
    h = await start({ upgrade: true, maxHeaderBytes: 1024 });
    const reply = await exchange(h.port, [`GET /${'a'.repeat(2048)} HTTP/1.1\r\nHost: a\r\n\r\n`]);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(h.violations).toEqual([{ reason: 'a line of the request head is longer than 1088 bytes', tooLarge: true }]);
    expect(h.requests).toEqual([]);
  });
});
