import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { AuditRecord, ConnectionRecord } from '../audit/record-fields';
import { GatewayError } from '../errors/gateway-error';
import { OverloadRecords } from './overload-records';

/** `count` accepted server-side sockets on loopback, and their clients. */
async function acceptedSockets(count: number): Promise<{ server: net.Server; accepted: net.Socket[]; clients: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    accepted.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    clients.push(client);
  }
  for (let i = 0; i < 200 && accepted.length < count; i++) await new Promise((r) => setTimeout(r, 10));
  expect(accepted).toHaveLength(count);
  return { server, accepted, clients };
}

const overloaded = (): GatewayError => new GatewayError('TG_ERR_OVERLOADED', 'accept', 'the gateway already has 3 open connections from 127.0.0.1 (limits.max_connections_per_client)');

describe('audit records of connections refused at the connection limits', () => {
  test('one record per refused connection, close refused, written when its socket closes; bounded per second, the rest counted in one log line', async () => {
    const { server, accepted, clients } = await acceptedSockets(5);
    const records: AuditRecord[] = [];
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    let now = 10_000;
    const overload = new OverloadRecords({ logger, audit: { write: (r) => records.push(r) } }, logger, 2, () => now);
    try {
      for (const socket of accepted) overload.refused(socket, 'socks', overloaded());
      expect(records).toHaveLength(0);
      for (const socket of accepted) socket.destroy();
      for (let i = 0; i < 200 && records.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(records).toHaveLength(2);
      for (const record of records as ConnectionRecord[]) {
        expect(record).toMatchObject({ type: 'connection', frontend: 'socks', client: '127.0.0.1', close: 'refused', action: 'none', target: '' });
        expect(record.error).toMatch(/^TG_ERR_OVERLOADED: .*max_connections_per_client/);
      }
      overload.close();
      expect(lines.filter((l) => l.refused === 3)).toHaveLength(1);
      // A new second has a new budget.
      now += 1000;
      const again = await acceptedSockets(1);
      overload.refused(again.accepted[0]!, 'socks', overloaded());
      again.accepted[0]!.destroy();
      for (let i = 0; i < 200 && records.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(records).toHaveLength(3);
      for (const client of again.clients) client.destroy();
      await new Promise<void>((resolve) => again.server.close(() => resolve()));
    } finally {
      for (const client of clients) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
