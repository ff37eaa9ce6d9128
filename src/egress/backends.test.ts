import net, { type AddressInfo } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { BackendEgress } from './backends';
import { Resolver } from './resolve';

/** The reverse listener's door: configured backends only, whatever the destination guard says. */
describe('BackendEgress', () => {
  let server: net.Server;
  let port: number;
  let egress: BackendEgress;

  beforeAll(async () => {
    server = net.createServer((socket) => {
      // The test closes its side at once; a reset is expected.
      socket.on('error', () => undefined);
      socket.end('hi');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    egress = new BackendEgress({
      resolver: new Resolver({ hosts: { 'backend.internal': '127.0.0.1' } }),
      isOwnListener: () => false,
      connectTimeoutMs: 2000,
      upstreamCaFile: null,
    });
    egress.update([{ target: { host: { kind: 'name', name: 'backend.internal' }, port }, caFile: null, key: 'reverse.routes[0]' }]);
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('a configured backend on loopback is dialled (no allow_addresses needed)', async () => {
    const connection = await egress.connect({ host: { kind: 'name', name: 'backend.internal' }, port });
    expect(connection.remote.address).toBe('127.0.0.1');
    connection.socket.destroy();
  });

  test('anything else is refused before it is resolved or dialled', async () => {
    const refused = egress.connect({ host: { kind: 'ipv4', address: '127.0.0.1' }, port });
    await expect(refused).rejects.toBeInstanceOf(GatewayError);
    await expect(refused).rejects.toMatchObject({ code: 'TG_ERR_DESTINATION_FORBIDDEN' });
    await expect(egress.resolveAllowed({ host: { kind: 'name', name: 'backend.internal' }, port: port + 1 })).rejects.toMatchObject({ code: 'TG_ERR_DESTINATION_FORBIDDEN' });
  });

  test('the loop check still applies to backends', async () => {
    const looping = new BackendEgress({ resolver: new Resolver({}), isOwnListener: () => true, connectTimeoutMs: 2000, upstreamCaFile: null });
    looping.update([{ target: { host: { kind: 'ipv4', address: '127.0.0.1' }, port }, caFile: null, key: 'reverse.routes[0]' }]);
    await expect(looping.connect({ host: { kind: 'ipv4', address: '127.0.0.1' }, port })).rejects.toMatchObject({ code: 'TG_ERR_LOOP' });
  });

  test('an unreadable route ca_file names the route key and keeps the backends in force', () => {
    expect(() => egress.update([{ target: { host: { kind: 'ipv4', address: '10.0.0.1' }, port: 443 }, caFile: '/nonexistent/ca.pem', key: 'reverse.routes[3]' }])).toThrow(
      /reverse\.routes\[3\]\.ca_file/,
    );
    expect(egress.isBackend({ host: { kind: 'name', name: 'backend.internal' }, port })).toBe(true);
  });
});
