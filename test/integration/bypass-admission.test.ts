import net from 'node:net';
import { subscribe } from '../../src/observability/events';
import { PROXY_V2_SIGNATURE, encodeProxyV2 } from '../../src/protocol/proxy-v2';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';

/**
 * Admission on listeners behind a load balancer (PROXY protocol v2). A connection counts
 * against limits.max_connections from accept, before its header has arrived, and the header
 * has its own short deadline (limits.proxy_header_timeout): otherwise anyone who reaches the
 * listener holds descriptors outside every limit by sending a few bytes of the signature.
 */

const MAX_CONNECTIONS = 20;
/** Sockets opened per listener; far more than the limit, few enough to open well within the deadline. */
const PARTIAL_PER_LISTENER = 40;

interface Held {
  readonly socket: net.Socket;
  /** Everything received so far. */
  readonly received: () => string;
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

/** Connects, waits for the connection, and sends `bytes`. */
async function open(port: number, bytes: Buffer): Promise<Held> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = '';
  let isClosed = false;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(bytes);
  return { socket, received: () => received, closed, isClosed: () => isClosed };
}

/** Sends one complete exchange and resolves with the reply once the gateway closes, bounded by `ms`. */
async function exchange(port: number, bytes: Buffer, ms = 5000): Promise<string> {
  const held = await open(port, bytes);
  const timer = setTimeout(() => held.socket.destroy(), ms);
  await held.closed;
  clearTimeout(timer);
  return held.received();
}

describe('PROXY protocol listeners: admission from accept, and a deadline of its own for the header', () => {
  let origin: Origin;
  let gw: TestGateway;
  let socksPort: number;
  const breaches: string[] = [];
  let unsubscribe: () => void;

  beforeAll(async () => {
    unsubscribe = subscribe('tollgate:limit:breached', (m) => breaches.push(`${m.frontend}:${m.limit}`));
    origin = await startHttpOrigin('admission');
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  socks: 127.0.0.1:0\n  proxy_protocol: [explicit, socks]',
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      allowedPorts: { tunnel: [origin.port], http: [origin.port] },
      // The request header deadline stays long: the PROXY header must not borrow it.
      extraConfig: `limits:\n  header_timeout: 60s\n  proxy_header_timeout: 3s\n  max_connections: ${MAX_CONNECTIONS}\n  max_connections_per_client: 2`,
    });
    socksPort = gw.gateway.address('socks')!.port;
  });

  afterAll(async () => {
    unsubscribe();
    // Guarded: a gateway that failed to start must not leave the origin holding jest open.
    await gw?.stop();
    await origin?.close();
  });

  const headerFrom = (address: string): Buffer => encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address, port: 40000 }, destination: { address: '10.0.0.5', port: 3128 } });
  const request = (): Buffer => Buffer.from(`GET http://origin.test:${origin.port}/hello HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nConnection: close\r\n\r\n`);

  test('partial signatures count against max_connections from accept, on every listener, and are closed at proxy_header_timeout', async () => {
    const partial = PROXY_V2_SIGNATURE.subarray(0, 7);
    const held: Held[] = [];
    for (let i = 0; i < PARTIAL_PER_LISTENER; i++) {
      held.push(await open(gw.explicitPort, partial));
      held.push(await open(socksPort, partial));
    }
    // The limit holds: no more admitted than max_connections, and a complete, valid connection
    // is now refused like any other over the limit.
    expect(
      await eventually(
        () => gw.gateway.connections.openConnections,
        (n) => n === MAX_CONNECTIONS,
      ),
    ).toBe(MAX_CONNECTIONS);
    const refused = await exchange(gw.explicitPort, Buffer.concat([headerFrom('203.0.113.10'), request()]));
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused).toMatch(/x-tollgate-reason: TG_ERR_OVERLOADED/);

    // The admitted partial connections are closed by the header deadline, long before header_timeout.
    await Promise.race([Promise.all(held.map((h) => h.closed)), new Promise((resolve) => setTimeout(resolve, 15_000))]);
    expect(held.filter((h) => !h.isClosed())).toHaveLength(0);
    expect(
      await eventually(
        () => gw.gateway.connections.openConnections,
        (n) => n === 0,
      ),
    ).toBe(0);
    // Every partial connection was either refused at accept or closed at the deadline, and
    // the complete one above was refused too.
    const overLimit = breaches.filter((b) => b.endsWith(':max_connections')).length;
    const atDeadline = breaches.filter((b) => b.endsWith(':proxy_header_timeout')).length;
    expect(atDeadline).toBeGreaterThanOrEqual(MAX_CONNECTIONS);
    expect(overLimit + atDeadline).toBe(held.length + 1);
    expect(breaches).toEqual(expect.arrayContaining(['explicit:max_connections', 'socks:max_connections', 'explicit:proxy_header_timeout', 'socks:proxy_header_timeout']));
    expect(gw.logs().filter((l) => l.limit === 'limits.proxy_header_timeout')).toHaveLength(atDeadline);

    // Slots freed: served again.
    expect(await exchange(gw.explicitPort, Buffer.concat([headerFrom('203.0.113.11'), request()]))).toMatch(/^HTTP\/1\.1 200 /);
  });

  test('the per-client limit counts the client from the header, not the balancer', async () => {
    const holdOpen = (client: string): Promise<Held> =>
      open(gw.explicitPort, Buffer.concat([headerFrom(client), Buffer.from(`CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`)]));
    const tunnels = [await holdOpen('203.0.113.20'), await holdOpen('203.0.113.20')];
    for (const tunnel of tunnels) await eventually(tunnel.received, (r) => r.includes('\r\n\r\n'));
    expect(tunnels.map((t) => t.received().split('\r\n')[0])).toEqual(['HTTP/1.1 200 Connection Established', 'HTTP/1.1 200 Connection Established']);
    const third = await exchange(gw.explicitPort, Buffer.concat([headerFrom('203.0.113.20'), request()]));
    expect(third).toMatch(/^HTTP\/1\.1 503 /);
    expect(third).toMatch(/limits\.max_connections_per_client/);
    // Through the same balancer address, another client is not affected.
    expect(await exchange(gw.explicitPort, Buffer.concat([headerFrom('203.0.113.21'), request()]))).toMatch(/^HTTP\/1\.1 200 /);
    for (const tunnel of tunnels) tunnel.socket.destroy();
  });
});
