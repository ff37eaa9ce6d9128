import net from 'node:net';
import tls from 'node:tls';

/** A real ClientHello for `servername`, captured from Node's TLS client by a local listener. */
export function captureClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername });
      client.on('error', () => undefined);
    });
  });
}
