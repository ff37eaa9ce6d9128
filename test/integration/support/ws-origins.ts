import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

/**
 * A local WebSocket echo origin (the `ws` package's server, a real RFC 6455 implementation):
 * every message on /echo comes back unchanged; other paths decline the upgrade with 404.
 * Handshakes are remembered for assertions.
 */
export interface WsOrigin {
  readonly port: number;
  readonly handshakes: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

export function startWsOrigin(tlsOptions?: { cert: string; key: string }): Promise<WsOrigin> {
  const server = tlsOptions ? https.createServer({ ...tlsOptions, ALPNProtocols: ['http/1.1'] }) : http.createServer();
  server.on('request', (_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not a websocket endpoint\n');
  });
  const handshakes: http.IncomingHttpHeaders[] = [];
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
    if (req.url !== '/echo') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    handshakes.push(req.headers);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        handshakes,
        close: () =>
          new Promise<void>((done) => {
            for (const client of wss.clients) client.terminate();
            wss.close();
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
