import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { startDnsServer, type DnsServer } from './support/dns-server';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';

/**
 * Loops through another spelling of the gateway's own address: the loop check compares the
 * dialled address as an address (IPv4-mapped forms unmapped, IPv6 in any notation, wildcard
 * binds against every local address), not as text. Each case would otherwise give a client a
 * nested tunnel through the gateway, or the admin listener through the proxy.
 */

/** Sends raw bytes to host:port and collects the reply until close or `timeoutMs`. */
function exchange(host: string, port: number, payload: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => socket.write(payload));
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

const connect = (authority: string): string => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;

/** The status line and reason code of a refusal, or the status line of whatever came back. */
function outcome(reply: string): string {
  const status = reply.split('\r\n')[0] ?? '';
  const reason = /x-tollgate-reason: (\S+)/i.exec(reply)?.[1] ?? '-';
  return `${status} ${reason}`;
}

const LOOP = 'HTTP/1.1 403 Forbidden TG_ERR_LOOP';

/** Splices everything to the listed ports, so only the loop check stands between client and listener. */
function allowPorts(gw: TestGateway, ports: readonly number[]): void {
  writeFileSync(path.join(gw.dir, 'policies', 'a.yaml'), `rules:\n  - match: [.test, 0.0.0.0/0, "::/0"]\n    action: splice\n    ports: [${ports.join(', ')}]\n`);
  expect(gw.gateway.reload('test').ok).toBe(true);
}

describe('loop check by address, listeners on 127.0.0.1', () => {
  let dns: DnsServer;
  let gw: TestGateway;
  let explicitPort: number;
  let adminPort: number;
  let socksPort: number;

  beforeAll(async () => {
    // A DNS answer can carry the mapped form too (an AAAA record of ::ffff:127.0.0.1).
    dns = await startDnsServer({ 'dns-mapped-self.test': { aaaa: ['::ffff:7f00:1'], ttl: 300 } });
    gw = await startTestGateway({
      dnsServers: [dns.address],
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  socks: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      policies: { 'a.yaml': 'rules: []\n' },
      upstreamSection: [
        'upstream:',
        '  hosts:',
        '    mapped-self.test: "::ffff:127.0.0.1"',
        '    hex-mapped-self.test: "::ffff:7f00:1"',
        '    plain-self.test: 127.0.0.1',
        // An operator who switched the guard off for IPv4 also allowed 0.0.0.0, which Linux
        // dials as this host.
        '  allow_addresses: [0.0.0.0/0]',
      ].join('\n'),
    });
    explicitPort = gw.explicitPort;
    adminPort = gw.gateway.address('admin')!.port;
    socksPort = gw.gateway.address('socks')!.port;
    allowPorts(gw, [explicitPort, adminPort, socksPort]);
  });

  afterAll(async () => {
    await gw?.stop();
    await dns?.close();
  });

  test.each(['mapped-self.test', 'hex-mapped-self.test', 'dns-mapped-self.test', 'plain-self.test', '127.0.0.1', '[::ffff:127.0.0.1]', '0.0.0.0'])(
    'CONNECT %s to the admin, explicit and SOCKS ports is refused as a loop',
    async (host) => {
      for (const port of [adminPort, explicitPort, socksPort]) {
        const reply = await exchange('127.0.0.1', explicitPort, connect(`${host}:${port}`));
        expect(`${host}:${port} ${outcome(reply)}`).toBe(`${host}:${port} ${LOOP}`);
      }
    },
  );

  test('plain HTTP through a name that maps to ::ffff:127.0.0.1 never reaches the admin listener', async () => {
    const res = await curl(['-x', gw.proxy, `http://mapped-self.test:${adminPort}/healthz`]);
    expect(res.status).toBe(403);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_LOOP');
  });

  test('SOCKS5 to a name that maps to ::ffff:127.0.0.1 at the explicit port is refused as a loop', async () => {
    const res = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, `http://mapped-self.test:${explicitPort}/`]);
    expect(res.status).not.toBe(200);
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.frontend === 'socks'),
      (r) => r.length > 0,
    );
    expect(records.at(-1)!.error).toMatch(/^TG_ERR_LOOP: /);
  });
});

describe('loop check by address, explicit listener on the IPv6 wildcard (dual stack)', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: "[::]:0"',
      policies: { 'a.yaml': 'rules: []\n' },
      upstreamSection: ['upstream:', '  hosts:', '    mapped-self.test: "::ffff:127.0.0.1"', '    long-self.test: "0:0:0:0:0:0:0:1"', '  allow_addresses: [0.0.0.0/0, "::/0"]'].join('\n'),
    });
    allowPorts(gw, [gw.explicitPort]);
  });

  afterAll(async () => {
    await gw?.stop();
  });

  test.each(['mapped-self.test', 'long-self.test', '[::ffff:127.0.0.1]', '[::1]', '[::]', '127.0.0.1'])('CONNECT %s to the listener port is refused as a loop', async (host) => {
    const reply = await exchange('127.0.0.1', gw.explicitPort, connect(`${host}:${gw.explicitPort}`));
    expect(`${host} ${outcome(reply)}`).toBe(`${host} ${LOOP}`);
  });
});

describe('loop check by address, explicit listener on ::1', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: "[::1]:0"',
      policies: { 'a.yaml': 'rules: []\n' },
      upstreamSection: ['upstream:', '  hosts:', '    long-self.test: "0:0:0:0:0:0:0:1"', '  allow_addresses: ["::1/128"]'].join('\n'),
    });
    allowPorts(gw, [gw.explicitPort]);
  });

  afterAll(async () => {
    await gw?.stop();
  });

  test.each(['long-self.test', '[::1]', '[0:0::1]'])('CONNECT %s to the listener port is refused as a loop', async (host) => {
    const reply = await exchange('::1', gw.explicitPort, connect(`${host}:${gw.explicitPort}`));
    expect(`${host} ${outcome(reply)}`).toBe(`${host} ${LOOP}`);
  });
});
