import net from 'node:net';

/**
 * Sends raw bytes to a listener and collects the reply until close or timeout. A list of
 * payloads is sent as separate writes `gapMs` apart (a message arriving in pieces).
 */
export function rawExchange(port: number, payload: string | Buffer | readonly (string | Buffer)[], timeoutMs = 3000, gapMs = 0): Promise<string> {
  return new Promise((resolve) => {
    const parts = Array.isArray(payload) ? payload : [payload];
    const socket = net.connect(port, '127.0.0.1', () => {
      parts.forEach((part, i) => {
        if (i === 0) socket.write(part);
        else setTimeout(() => socket.writable && socket.write(part), i * gapMs);
      });
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

/**
 * An origin that is a raw TCP listener: it counts connections and keeps every byte it was sent,
 * so even a request line forwarded without a body would be seen. It answers 200 once a header
 * block has arrived (`afterHeaders`) or at once on accept (for tests where nothing should arrive).
 */
export interface RecordingOrigin {
  readonly port: number;
  readonly connections: () => number;
  readonly received: () => string;
  close(): Promise<void>;
}

export async function startRecordingOrigin(options: { host?: string; replyAt: 'accept' | 'afterHeaders' }): Promise<RecordingOrigin> {
  const reply = 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n';
  let connections = 0;
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    if (options.replyAt === 'accept') socket.end(reply);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (options.replyAt === 'afterHeaders' && received.includes('\r\n\r\n')) socket.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
