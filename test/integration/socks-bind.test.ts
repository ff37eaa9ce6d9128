import net from 'node:net';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { GatewayMetrics } from '../../src/admin/metrics';
import { subscribe } from '../../src/observability/events';
import { eventually, type SocksTestGateway, startSocksTestGateway } from './support/gateway';

/**
 * SOCKS5 BIND (RFC 1928 sections 4 and 6) over real sockets: the client asks for a port, a peer
 * connects back to it, and the two replies and the relay follow the RFC byte for byte. The
 * peer must come from the address BIND's destination resolves to (bind.test -> 127.0.0.1);
 * 127.0.0.2 is a stranger on the same loopback.
 */

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function bindRequest(name: string, port: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([hex('05 01 00'), Buffer.from([0x05, 0x02, 0x00, 0x03, name.length]), Buffer.from(name, 'latin1'), p]);
}

/** A SOCKS client socket that collects every byte it receives. */
async function socksClient(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: () => boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), closed: () => closed };
}

/** Connects to the bound port from `localAddress`; resolves with the socket once connected. */
async function connectBack(port: number, localAddress: string): Promise<{ socket: net.Socket; received: () => Buffer; closed: () => boolean }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), closed: () => closed };
}

describe('SOCKS5 BIND', () => {
  let gw: SocksTestGateway;
  const results: string[] = [];
  let unsubscribe: () => void = () => undefined;
  let metrics: GatewayMetrics;

  beforeAll(async () => {
    gw = await startSocksTestGateway({
      hostNames: ['bind.test', 'nobind.test'],
      policies: {
        'bind.yaml': [
          'rules:',
          '  - name: ftp-like',
          '    match: bind.test',
          '    action: splice',
          '    ports: [2121]',
          '    socks_bind: true',
          '  - name: no-bind',
          '    match: nobind.test',
          '    action: splice',
          '    ports: [2121]',
          '',
        ].join('\n'),
      },
      extraConfig: 'limits:\n  socks_bind_timeout: 800ms',
    });
    unsubscribe = subscribe('tollgate:socks:bind', (m) => results.push(m.result));
    metrics = new GatewayMetrics({ leafCacheSize: () => 0, policyVersion: () => 'v', lastReload: () => ({ ok: true, at: new Date(0) }), openConnections: () => 0 });
  });

  afterAll(async () => {
    unsubscribe();
    metrics.close();
    await gw.stop();
  });

  const logged = (pattern: RegExp): boolean => gw.logs().some((line) => pattern.test(String(line.msg)));

  test('the first reply names a port on the listener address; a stranger is turned away; the right peer gets the second reply and a relay', async () => {
    const client = await socksClient(gw.socksPort);
    client.socket.write(bindRequest('bind.test', 2121));
    const first = await eventually(client.received, (b) => b.length >= 12, 3000);
    // Method selection, then VER 5, REP succeeded, RSV, ATYP IPv4, BND.ADDR 127.0.0.1, BND.PORT.
    expect(first.subarray(0, 10)).toEqual(hex('05 00 05 00 00 01 7f 00 00 01'));
    const boundPort = first.readUInt16BE(10);
    expect(boundPort).toBeGreaterThan(0);

    const stranger = await connectBack(boundPort, '127.0.0.2');
    await eventually(stranger.closed, (c) => c, 3000);
    expect(results).toContain('wrong-peer');
    expect(logged(/SOCKS5 BIND turned away a connection from an unexpected address/)).toBe(true);
    // The client heard nothing about the stranger.
    expect(client.received().length).toBe(12);

    const peer = await connectBack(boundPort, '127.0.0.1');
    const second = await eventually(client.received, (b) => b.length >= 22, 3000);
    const peerPort = peer.socket.localPort!;
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16BE(peerPort);
    expect(second.subarray(12, 22)).toEqual(Buffer.concat([hex('05 00 00 01 7f 00 00 01'), portBytes]));

    peer.socket.write('220 server greets first\r\n');
    await eventually(
      () => client.received().subarray(22).toString(),
      (t) => t === '220 server greets first\r\n',
      3000,
    );
    client.socket.write('USER anonymous\r\n');
    await eventually(
      () => peer.received().toString(),
      (t) => t === 'USER anonymous\r\n',
      3000,
    );
    // One connection only: the port is closed once the peer is accepted.
    await expect(connectBack(boundPort, '127.0.0.1')).rejects.toThrow(/ECONNREFUSED/);

    peer.socket.end();
    client.socket.end();
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.target === 'bind.test:2121' && r.upstream_address !== null),
      (r) => r.length > 0,
      5000,
    );
    expect(records[0]).toMatchObject({ frontend: 'socks', action: 'splice', rule: 'ftp-like', upstream_address: '127.0.0.1', bytes_from_client: 16, bytes_to_client: 25 });
    expect(results).toContain('connected');
  });

  test('nobody connects back: the second reply is TTL expired (0x06) at limits.socks_bind_timeout, then close', async () => {
    const client = await socksClient(gw.socksPort);
    client.socket.write(bindRequest('bind.test', 2121));
    await eventually(client.closed, (c) => c, 5000);
    const bytes = client.received();
    expect(bytes.subarray(0, 6)).toEqual(hex('05 00 05 00 00 01'));
    expect(bytes.subarray(12)).toEqual(hex('05 06 00 01 00000000 0000'));
    expect(results).toContain('timeout');
    expect(logged(/limit reached: limits.socks_bind_timeout/)).toBe(true);
  });

  test('a rule without socks_bind: true refuses BIND with 0x02 and says why', async () => {
    const client = await socksClient(gw.socksPort);
    client.socket.write(bindRequest('nobind.test', 2121));
    await eventually(client.closed, (c) => c, 3000);
    expect(client.received()).toEqual(hex('05 00 05 02 00 01 00000000 0000'));
    expect(gw.logs().some((l) => l.msg === 'SOCKS5 BIND refused' && /rule no-bind does not say socks_bind: true/.test(String(l.reason)))).toBe(true);
  });

  test('the client leaving while BIND waits closes the bound port', async () => {
    const client = await socksClient(gw.socksPort);
    client.socket.write(bindRequest('bind.test', 2121));
    const first = await eventually(client.received, (b) => b.length >= 12, 3000);
    const boundPort = first.readUInt16BE(10);
    client.socket.destroy();
    await eventually(
      () => results.filter((r) => r === 'client-closed').length,
      (n) => n > 0,
      3000,
    );
    await expect(connectBack(boundPort, '127.0.0.1')).rejects.toThrow(/ECONNREFUSED/);
  });

  test('each outcome above is a tollgate_socks_bind_total counter', async () => {
    const data = await metrics.registry.getSingleMetric('tollgate_socks_bind_total')!.get();
    const byResult = Object.fromEntries(data.values.map((v) => [String(v.labels.result), v.value]));
    expect(byResult).toEqual({ 'wrong-peer': 1, connected: 1, timeout: 1, refused: 1, 'client-closed': 1 });
  });
});
