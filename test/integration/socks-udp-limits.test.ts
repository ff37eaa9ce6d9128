import dgram from 'node:dgram';
import net from 'node:net';
import type { AuditRecord, UdpAssociationRecord } from '../../src/audit/record-fields';
import { startDnsServer, type DnsServer } from './support/dns-server';
import { eventually, type SocksTestGateway, startSocksTestGateway } from './support/gateway';

/** Per-association limits: over limits.socks_udp_max_datagrams the association ends; others go on. */

async function associate(proxyPort: number): Promise<{ control: net.Socket; relayPort: number; closed: () => boolean }> {
  const control = net.connect(proxyPort, '127.0.0.1');
  control.on('error', () => undefined);
  let closed = false;
  control.on('close', () => (closed = true));
  const received: Buffer[] = [];
  control.on('data', (chunk: Buffer) => received.push(chunk));
  await new Promise<void>((resolve, reject) => {
    control.once('connect', resolve);
    control.once('error', reject);
  });
  control.write(Buffer.from('050100' + '05030001000000000000', 'hex'));
  const all = await eventually(
    () => Buffer.concat(received),
    (b) => b.length >= 12,
    3000,
  );
  if (all[3] !== 0x00) throw new Error(`UDP ASSOCIATE refused: ${all.toString('hex')}`);
  return { control, relayPort: all.readUInt16BE(10), closed: () => closed };
}

function query(port: number, name: string): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const dns = Buffer.concat([Buffer.from('abcd01000001000000000000', 'hex'), ...labels, Buffer.from('0000010001', 'hex')]);
  return Buffer.concat([Buffer.from([0, 0, 0, 0x03, 'dns.test'.length]), Buffer.from('dns.test'), p, dns]);
}

describe('SOCKS5 UDP association limits', () => {
  let dns: DnsServer;
  let dnsPort: number;
  let gw: SocksTestGateway;

  beforeAll(async () => {
    dns = await startDnsServer({ 'answer.test': { a: ['192.0.2.55'], ttl: 60 } });
    dnsPort = Number(dns.address.split(':')[1]);
    gw = await startSocksTestGateway({
      hostNames: ['dns.test'],
      policies: { 'udp.yaml': `rules:\n  - name: local-dns\n    match: dns.test\n    action: splice\n    ports: [${dnsPort}]\n` },
      // One query and its answer, no more.
      extraConfig: 'limits:\n  socks_udp_max_datagrams: 2',
    });
  });

  afterAll(async () => {
    await gw.stop();
    await dns.close();
  });

  test('the datagram over limits.socks_udp_max_datagrams is not relayed and ends the association; another client is unaffected', async () => {
    const first = await associate(gw.socksPort);
    const client = dgram.createSocket('udp4');
    const answers: Buffer[] = [];
    client.on('message', (m) => answers.push(m));
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      const before = dns.queries('answer.test', 'A');
      client.send(query(dnsPort, 'answer.test'), first.relayPort, '127.0.0.1');
      await eventually(
        () => answers.length,
        (n) => n === 1,
        3000,
      );
      client.send(query(dnsPort, 'answer.test'), first.relayPort, '127.0.0.1');
      await eventually(first.closed, (c) => c, 3000);
      expect(dns.queries('answer.test', 'A')).toBe(before + 1);
      expect(answers).toHaveLength(1);
      expect(gw.logs().some((l) => l.msg === 'limit reached: limits.socks_udp_max_datagrams')).toBe(true);
      const records = await eventually(
        async () => (await gw.audit()).filter((r: AuditRecord): r is UdpAssociationRecord => r.type === 'udp_association' && r.close === 'limit'),
        (r) => r.length === 1,
        3000,
      );
      expect(records[0]).toMatchObject({ datagrams_from_client: 1, datagrams_to_client: 1 });

      // A second association (a fresh budget) still gets its answer.
      const second = await associate(gw.socksPort);
      client.send(query(dnsPort, 'answer.test'), second.relayPort, '127.0.0.1');
      await eventually(
        () => answers.length,
        (n) => n === 2,
        3000,
      );
      expect(answers[1]!.subarray(answers[1]!.length - 4)).toEqual(Buffer.from([192, 0, 2, 55]));
      second.control.destroy();
    } finally {
      client.close();
      first.control.destroy();
    }
  });
});
