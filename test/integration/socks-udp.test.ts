import dgram from 'node:dgram';
import net from 'node:net';
import type { AuditRecord, UdpAssociationRecord } from '../../src/audit/record-fields';
import { GatewayMetrics } from '../../src/admin/metrics';
import { subscribe } from '../../src/observability/events';
import { startDnsServer, type DnsServer } from './support/dns-server';
import { eventually, type SocksTestGateway, startSocksTestGateway } from './support/gateway';
import { run } from './support/run';

/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) end to end: a python3 client written from the RFC
 * (not by the gateway's code) opens an association and sends a DNS query through it to a local
 * DNS server; bad input gets no relay, a counter and a log line, and the gateway stays up.
 */

/**
 * The independent client: the TCP handshake, then each datagram's header byte for byte from
 * RFC 1928 section 7 (RSV X'0000', FRAG, ATYP, DST.ADDR, DST.PORT, DATA). Prints one JSON line.
 */
const PY_CLIENT = String.raw`
import json, socket, struct, sys
proxy_port, dest, dest_port, qname, frag, atyp = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
tcp = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
tcp.sendall(b"\x05\x01\x00")
assert tcp.recv(2) == b"\x05\x00"
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp.settimeout(2)
# DST.ADDR/DST.PORT: where our datagrams will come from.
tcp.sendall(b"\x05\x03\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", udp.getsockname()[1]))
reply = b""
while len(reply) < 10:
    chunk = tcp.recv(10 - len(reply))
    if not chunk: break
    reply += chunk
out = {"reply": reply.hex()}
if len(reply) == 10 and reply[1] == 0:
    relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
    out["relay"] = "%s:%d" % relay
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in qname.split(".")) + b"\x00" + struct.pack(">HH", 1, 1)
    if atyp == "domain":
        addr = b"\x03" + bytes([len(dest)]) + dest.encode()
    else:
        addr = b"\x01" + socket.inet_aton(dest)
    udp.sendto(b"\x00\x00" + bytes([frag]) + addr + struct.pack(">H", dest_port) + q, relay)
    try:
        data, src = udp.recvfrom(2048)
        out["from"] = "%s:%d" % src
        out["header"] = data[:10].hex()
        dns = data[10:]
        out["dns_id"] = struct.unpack(">H", dns[:2])[0]
        out["answer"] = socket.inet_ntoa(dns[-4:])
    except socket.timeout:
        out["timeout"] = True
print(json.dumps(out))
tcp.close()
`;

interface PyResult {
  readonly reply: string;
  readonly relay?: string;
  readonly from?: string;
  readonly header?: string;
  readonly dns_id?: number;
  readonly answer?: string;
  readonly timeout?: true;
}

async function pyQuery(proxyPort: number, dest: string, destPort: number, options: { frag?: number; atyp?: 'domain' | 'ipv4'; qname?: string } = {}): Promise<PyResult> {
  const result = await run('python3', ['-c', PY_CLIENT, String(proxyPort), dest, String(destPort), options.qname ?? 'answer.test', String(options.frag ?? 0), options.atyp ?? 'domain'], {
    timeoutMs: 10_000,
  });
  if (result.code !== 0) throw new Error(`python3 client failed: ${result.stderr}`);
  return JSON.parse(result.stdout.toString()) as PyResult;
}

/** A UDP ASSOCIATE over a raw TCP socket; resolves with the control socket and the relay port. */
async function associate(proxyPort: number, declaredPort = 0): Promise<{ control: net.Socket; relayPort: number }> {
  const control = net.connect(proxyPort, '127.0.0.1');
  control.on('error', () => undefined);
  const received: Buffer[] = [];
  control.on('data', (chunk: Buffer) => received.push(chunk));
  await new Promise<void>((resolve, reject) => {
    control.once('connect', resolve);
    control.once('error', reject);
  });
  const port = Buffer.alloc(2);
  port.writeUInt16BE(declaredPort);
  control.write(Buffer.concat([Buffer.from('050100', 'hex'), Buffer.from('0503000100000000', 'hex'), port]));
  const all = await eventually(
    () => Buffer.concat(received),
    (b) => b.length >= 12,
    3000,
  );
  if (all[3] !== 0x00) throw new Error(`UDP ASSOCIATE refused: ${all.toString('hex')}`);
  return { control, relayPort: all.readUInt16BE(10) };
}

function datagram(name: string, port: number, payload: Buffer, frag = 0): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0, 0, frag, 0x03, name.length]), Buffer.from(name, 'latin1'), p, payload]);
}

/** A DNS query for `name`, type A. */
function dnsQuery(name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([Buffer.from('abcd01000001000000000000', 'hex'), ...labels, Buffer.from('0000010001', 'hex')]);
}

describe('SOCKS5 UDP ASSOCIATE', () => {
  let dns: DnsServer;
  let dnsPort: number;
  let gw: SocksTestGateway;
  /** An origin that answers from another port than the one it was sent to (a spoofed reply). */
  let spoofer: dgram.Socket;
  let spoofReplier: dgram.Socket;
  let spoofPort: number;
  const drops: string[] = [];
  const closes: string[] = [];
  const unsubscribe: (() => void)[] = [];
  // The Prometheus counters, fed by the same process-wide events as the admin listener's.
  let metrics: GatewayMetrics;
  const counter = async (name: string, labels: Record<string, string>): Promise<number> => {
    const data = await metrics.registry.getSingleMetric(name)!.get();
    return data.values.find((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))?.value ?? 0;
  };

  beforeAll(async () => {
    dns = await startDnsServer({ 'answer.test': { a: ['192.0.2.53'], ttl: 60 } });
    dnsPort = Number(dns.address.split(':')[1]);
    spoofer = dgram.createSocket('udp4');
    spoofReplier = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => spoofer.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => spoofReplier.bind(0, '127.0.0.1', resolve));
    spoofPort = spoofer.address().port;
    spoofer.on('message', (msg, from) => spoofReplier.send(msg, from.port, from.address));
    gw = await startSocksTestGateway({
      hostNames: ['dns.test', 'blocked.test', 'other-port.test', 'spoof.test'],
      policies: {
        'udp.yaml': [
          'rules:',
          '  - name: local-dns',
          '    match: [dns.test, 127.0.0.1]',
          '    action: splice',
          `    ports: [${dnsPort}]`,
          '  - name: blocked',
          '    match: blocked.test',
          '    action: deny',
          '    reason: no UDP to blocked.test',
          '  - name: internal',
          '    match: 10.0.0.0/8',
          '    action: splice',
          `    ports: [${dnsPort}]`,
          '  - name: spoof',
          '    match: spoof.test',
          '    action: splice',
          `    ports: [${spoofPort}]`,
          '  - name: no-port-list',
          '    match: other-port.test',
          '    action: inspect',
          '',
        ].join('\n'),
      },
      extraConfig: 'limits:\n  socks_udp_idle_timeout: 2s',
    });
    metrics = new GatewayMetrics({ leafCacheSize: () => 0, policyVersion: () => 'v', lastReload: () => ({ ok: true, at: new Date(0) }), openConnections: () => 0 });
    unsubscribe.push(subscribe('tollgate:socks:udp-dropped', (m) => drops.push(m.reason)));
    unsubscribe.push(subscribe('tollgate:socks:udp-closed', (m) => closes.push(m.close)));
  });

  afterAll(async () => {
    for (const u of unsubscribe) u();
    metrics.close();
    await gw.stop();
    await dns.close();
    spoofer.close();
    spoofReplier.close();
  });

  const logged = (pattern: RegExp): boolean => gw.logs().some((line) => pattern.test(`${String(line.msg)} ${String(line.drop_reason ?? '')} ${String(line.reason ?? '')}`));
  const associations = async (): Promise<UdpAssociationRecord[]> => (await gw.audit()).filter((r: AuditRecord): r is UdpAssociationRecord => r.type === 'udp_association');

  test('a DNS query by name is relayed to the DNS server and its answer comes back with an RFC 1928 header', async () => {
    const before = dns.queries('answer.test', 'A');
    const result = await pyQuery(gw.socksPort, 'dns.test', dnsPort);
    // Success, BND.ADDR = the listener's address (127.0.0.1), BND.PORT = the relay port.
    expect(result.reply.slice(0, 16)).toBe('050000017f000001');
    expect(result.relay).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(result.from).toBe(result.relay);
    // RSV 0000, FRAG 00, ATYP IPv4, the DNS server's address and port.
    expect(result.header).toBe(`00000001 7f000001 ${dnsPort.toString(16).padStart(4, '0')}`.replace(/ /g, ''));
    expect(result.dns_id).toBe(0x1234);
    expect(result.answer).toBe('192.0.2.53');
    expect(dns.queries('answer.test', 'A')).toBe(before + 1);
    const records = await eventually(associations, (r) => r.some((a) => a.destinations.some((d) => d.target === `dns.test:${dnsPort}`)), 5000);
    const record = records.find((a) => a.destinations.some((d) => d.target === `dns.test:${dnsPort}`))!;
    expect(record).toMatchObject({
      frontend: 'socks',
      client: '127.0.0.1',
      relay_address: result.relay,
      datagrams_from_client: 1,
      datagrams_to_client: 1,
      close: 'client-closed',
    });
    expect(record.destinations).toEqual([
      {
        target: `dns.test:${dnsPort}`,
        address: '127.0.0.1',
        action: 'splice',
        rule: 'local-dns',
        datagrams_to_origin: 1,
        bytes_to_origin: record.bytes_from_client,
        datagrams_from_origin: 1,
        bytes_from_origin: record.bytes_to_client,
      },
    ]);
    expect(record.bytes_to_client).toBeGreaterThan(record.bytes_from_client);
  });

  test('an IPv4 destination is decided as an address', async () => {
    const result = await pyQuery(gw.socksPort, '127.0.0.1', dnsPort, { atyp: 'ipv4' });
    expect(result.answer).toBe('192.0.2.53');
  });

  test('a destination the policy denies gets no relay, a counter and a log line', async () => {
    const before = dns.queries('answer.test', 'A');
    const dropped = drops.filter((d) => d === 'denied').length;
    const result = await pyQuery(gw.socksPort, 'blocked.test', dnsPort);
    expect(result.timeout).toBe(true);
    expect(dns.queries('answer.test', 'A')).toBe(before);
    expect(drops.filter((d) => d === 'denied').length).toBe(dropped + 1);
    expect(logged(/SOCKS5 UDP datagram dropped denied no UDP to blocked\.test/)).toBe(true);
  });

  test('a port outside allowed_ports.udp and the rule is dropped as "port"', async () => {
    const before = dns.queries('answer.test', 'A');
    const result = await pyQuery(gw.socksPort, 'other-port.test', dnsPort);
    expect(result.timeout).toBe(true);
    expect(dns.queries('answer.test', 'A')).toBe(before);
    expect(drops).toContain('port');
    expect(logged(/dropped port port \d+ is not allowed for other-port\.test/)).toBe(true);
  });

  test('an internal address the destination guard forbids is dropped as "forbidden", although the policy allows it', async () => {
    const result = await pyQuery(gw.socksPort, '10.1.2.3', dnsPort, { atyp: 'ipv4' });
    expect(result.timeout).toBe(true);
    expect(drops).toContain('forbidden');
    expect(logged(/dropped forbidden .*10\.1\.2\.3/)).toBe(true);
    const records = await eventually(associations, (r) => r.some((a) => a.dropped.forbidden === 1), 5000);
    const record = records.find((a) => a.dropped.forbidden === 1)!;
    expect([record.datagrams_from_client, record.destinations]).toEqual([0, []]);
  });

  test('a reply from an address:port the client never sent to is dropped as "origin-stranger"', async () => {
    const result = await pyQuery(gw.socksPort, 'spoof.test', spoofPort);
    expect(result.timeout).toBe(true);
    expect(drops).toContain('origin-stranger');
    expect(logged(/dropped origin-stranger/)).toBe(true);
  });

  test('a fragment (FRAG != 0) is dropped and counted', async () => {
    const before = dns.queries('answer.test', 'A');
    const result = await pyQuery(gw.socksPort, 'dns.test', dnsPort, { frag: 1 });
    expect(result.timeout).toBe(true);
    expect(dns.queries('answer.test', 'A')).toBe(before);
    expect(drops).toContain('fragment');
    const records = await eventually(associations, (r) => r.some((a) => a.dropped.fragment === 1), 5000);
    expect(records.find((a) => a.dropped.fragment === 1)!.datagrams_from_client).toBe(0);
  });

  test('malformed headers and datagrams from a stranger are dropped; the client still gets its answer', async () => {
    const { control, relayPort } = await associate(gw.socksPort);
    const client = dgram.createSocket('udp4');
    const stranger = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      // From 127.0.0.2: not the control connection's address.
      await new Promise<void>((resolve) => stranger.bind(0, '127.0.0.2', resolve));
      const answers: Buffer[] = [];
      client.on('message', (m) => answers.push(m));
      const before = dns.queries('answer.test', 'A');
      const malformed = [
        Buffer.from('0000', 'hex'),
        Buffer.from('0101000100000000', 'hex'),
        Buffer.from('000000057f0000010035', 'hex'),
        Buffer.from('00000001 7f000001 0000'.replace(/ /g, ''), 'hex'),
      ];
      for (const bad of malformed) client.send(bad, relayPort, '127.0.0.1');
      stranger.send(datagram('dns.test', dnsPort, dnsQuery('answer.test')), relayPort, '127.0.0.1');
      await eventually(
        () => drops.filter((d) => d === 'malformed' || d === 'stranger').length,
        (n) => n >= 5,
        3000,
      );
      expect(dns.queries('answer.test', 'A')).toBe(before);
      // The association still works for its own client.
      client.send(datagram('dns.test', dnsPort, dnsQuery('answer.test')), relayPort, '127.0.0.1');
      const got = await eventually(
        () => answers,
        (a) => a.length > 0,
        3000,
      );
      expect(got[0]!.subarray(got[0]!.length - 4)).toEqual(Buffer.from([192, 0, 2, 53]));
      expect(logged(/dropped stranger only 127\.0\.0\.1/)).toBe(true);
      expect(logged(/dropped malformed reserved bytes are 0x0101/)).toBe(true);
      expect(logged(/dropped malformed datagram destination port is 0/)).toBe(true);
    } finally {
      client.close();
      stranger.close();
      control.destroy();
    }
  });

  test("a declared port other than the sender's is a stranger", async () => {
    const { control, relayPort } = await associate(gw.socksPort, 9);
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      const strangers = drops.filter((d) => d === 'stranger').length;
      client.send(datagram('dns.test', dnsPort, dnsQuery('answer.test')), relayPort, '127.0.0.1');
      await eventually(
        () => drops.filter((d) => d === 'stranger').length,
        (n) => n === strangers + 1,
        3000,
      );
    } finally {
      client.close();
      control.destroy();
    }
  });

  test('when the control connection dies the relay port closes: nothing more is relayed', async () => {
    const { control, relayPort } = await associate(gw.socksPort);
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      const answers: Buffer[] = [];
      client.on('message', (m) => answers.push(m));
      const closed = closes.length;
      control.destroy();
      await eventually(
        () => closes.length,
        (n) => n > closed,
        3000,
      );
      expect(logged(/SOCKS5 UDP association closed/)).toBe(true);
      const before = dns.queries('answer.test', 'A');
      client.send(datagram('dns.test', dnsPort, dnsQuery('answer.test')), relayPort, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 300));
      expect(answers).toEqual([]);
      expect(dns.queries('answer.test', 'A')).toBe(before);
    } finally {
      client.close();
    }
  });

  test('an idle association ends at limits.socks_udp_idle_timeout and closes its control connection', async () => {
    const { control } = await associate(gw.socksPort);
    const closed = new Promise<boolean>((resolve) => {
      control.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 6000).unref();
    });
    expect(await closed).toBe(true);
    const records = await eventually(associations, (r) => r.some((a) => a.close === 'timeout'), 3000);
    expect(records.some((a) => a.close === 'timeout')).toBe(true);
  });

  test('the gateway stays up: a new association after all of the above still resolves', async () => {
    const result = await pyQuery(gw.socksPort, 'dns.test', dnsPort);
    expect(result.answer).toBe('192.0.2.53');
  });

  test('every drop above is a Prometheus counter by reason; relayed datagrams and closed associations are counted', async () => {
    for (const reason of ['denied', 'port', 'forbidden', 'origin-stranger', 'fragment', 'malformed', 'stranger']) {
      expect([reason, await counter('tollgate_socks_udp_dropped_total', { reason })]).toEqual([reason, drops.filter((d) => d === reason).length]);
      expect(await counter('tollgate_socks_udp_dropped_total', { reason })).toBeGreaterThan(0);
    }
    expect(await counter('tollgate_socks_udp_datagrams_total', { direction: 'to_origin' })).toBeGreaterThanOrEqual(4);
    expect(await counter('tollgate_socks_udp_datagrams_total', { direction: 'to_client' })).toBeGreaterThanOrEqual(3);
    // The python client may leave before or after the 2 s idle timeout: count both.
    const closed = (await counter('tollgate_socks_udp_associations_closed_total', { close: 'timeout' })) + (await counter('tollgate_socks_udp_associations_closed_total', { close: 'client-closed' }));
    expect(closed).toBe(closes.length);
    expect(closed).toBeGreaterThanOrEqual(10);
  });
});
