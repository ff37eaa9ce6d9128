import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { subscribe } from '../../src/observability/events';
import { curl } from './support/run';
import { startHttpOrigin, type Origin } from './support/origins';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';

interface Exchange {
  readonly data: string;
  readonly closedAfterMs: number;
}

/** Connects (optionally from a given loopback address), sends, and collects until close. */
function exchange(port: number, payload: string | Buffer | null, options: { timeoutMs?: number; localAddress?: string } = {}): Promise<Exchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, () => {
      if (payload !== null) socket.write(payload);
    });
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), options.timeoutMs ?? 5000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closedAfterMs: Date.now() - started });
    });
  });
}

/** An open socket that has been accepted by the gateway (it sent nothing yet). */
function openIdle(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Events published on tollgate:limit:breached while the test runs. */
function recordBreaches(): { readonly seen: { limit: string; frontend: string }[]; stop: () => void } {
  const seen: { limit: string; frontend: string }[] = [];
  const stop = subscribe('tollgate:limit:breached', (message) => seen.push(message));
  return { seen, stop };
}

function limitLogged(gw: TestGateway, key: string): boolean {
  return gw.logs().some((line) => line.limit === key);
}

const HELLO = Buffer.from(readFileSync(path.resolve(__dirname, '../../src/protocol/testdata/openssl-sni-alpn.hex'), 'utf8').trim(), 'hex');

describe('limits and timeouts', () => {
  let origin: Origin;
  let gw: TestGateway;
  const breaches = recordBreaches();
  let blackhole: ChildProcess;
  let blackholePort = 0;

  beforeAll(async () => {
    origin = await startHttpOrigin('limits');
    // A listener with a full accept queue: the kernel drops further SYNs, so connecting hangs.
    blackhole = spawn(
      'python3',
      [
        '-c',
        [
          'import socket, sys, time',
          's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
          'c = socket.socket(); c.connect(s.getsockname())',
          'print(s.getsockname()[1], flush=True)',
          'time.sleep(120)',
        ].join('\n'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    blackholePort = await new Promise<number>((resolve) => blackhole.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443, origin.port, blackholePort], http: [origin.port, blackholePort] },
      hostNames: ['www.example.com', 'blackhole.test'],
      policies: {
        'a.yaml': ['rules:', '  - match: [origin.test, blackhole.test]', '    action: splice', '  - match: www.example.com', '    action: inspect', ''].join('\n'),
      },
      extraConfig: [
        'limits:',
        '  header_timeout: 600ms',
        '  tls_handshake_timeout: 700ms',
        '  client_idle_timeout: 1500ms',
        '  max_connections: 6',
        '  max_connections_per_client: 3',
        'http:',
        '  max_headers: 20',
        '  max_header_size: 8KiB',
      ].join('\n'),
      upstreamSection: [
        'upstream:',
        '  hosts:',
        '    origin.test: 127.0.0.1',
        '    www.example.com: 127.0.0.1',
        '    blackhole.test: 127.0.0.1',
        '  allow_addresses: [127.0.0.0/8]',
        '  connect_timeout: 800ms',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    breaches.stop();
    blackhole.kill('SIGKILL');
    await gw.stop();
    await origin.close();
  });

  const url = () => `http://origin.test:${origin.port}/hello`;

  test('more header fields than http.max_headers: 431, logged with the key, nothing forwarded', async () => {
    const before = origin.seen.length;
    const fields = Array.from({ length: 25 }, (_, i) => `X-F${i}: v\r\n`).join('');
    const reply = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n${fields}\r\n`);
    expect(reply.data).toMatch(/^HTTP\/1\.1 431 /);
    expect(origin.seen.length).toBe(before);
    expect(limitLogged(gw, 'http.max_headers')).toBe(true);
    expect(breaches.seen).toContainEqual({ limit: 'max_headers', frontend: 'explicit-http' });
    // At the limit is fine.
    const nineteen = Array.from({ length: 19 }, (_, i) => `X-F${i}: v\r\n`).join('');
    const atLimit = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n${nineteen}Connection: close\r\n\r\n`);
    expect(atLimit.data).toMatch(/^HTTP\/1\.1 431 /);
    const atLimitExactly = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n${nineteen.slice(nineteen.indexOf('\n') + 1)}Connection: close\r\n\r\n`);
    expect(atLimitExactly.data).toMatch(/^HTTP\/1\.1 200 /);
  });

  test('request line and headers over http.max_header_size: 431 with the key logged', async () => {
    const reply = await exchange(gw.explicitPort, `GET ${url()}?${'q'.repeat(9000)} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`);
    expect(reply.data).toMatch(/^HTTP\/1\.1 431 /);
    expect(limitLogged(gw, 'http.max_header_size')).toBe(true);
    expect(breaches.seen).toContainEqual({ limit: 'max_header_size', frontend: 'explicit' });
  });

  test('slowloris: headers not complete within limits.header_timeout get 408 and the socket is closed', async () => {
    const reply = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test\r\nX-Slow: `, { timeoutMs: 5000 });
    expect(reply.data).toMatch(/^HTTP\/1\.1 408 /);
    expect(reply.closedAfterMs).toBeGreaterThanOrEqual(500);
    expect(reply.closedAfterMs).toBeLessThan(3000);
    expect(limitLogged(gw, 'limits.header_timeout')).toBe(true);
    expect(breaches.seen).toContainEqual({ limit: 'header_timeout', frontend: 'explicit' });
  });

  test('a client stalling its TLS handshake in an inspected tunnel is closed after limits.tls_handshake_timeout', async () => {
    const reply = await exchange(gw.explicitPort, Buffer.concat([Buffer.from('CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n'), HELLO]), { timeoutMs: 5000 });
    expect(reply.data).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply.closedAfterMs).toBeGreaterThanOrEqual(600);
    expect(reply.closedAfterMs).toBeLessThan(3000);
    expect(limitLogged(gw, 'limits.tls_handshake_timeout')).toBe(true);
    expect(breaches.seen).toContainEqual({ limit: 'tls_handshake_timeout', frontend: 'explicit-connect' });
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.target === 'www.example.com:443' && x.close === 'timeout'));
    expect(records.some((x) => x.type === 'connection' && x.target === 'www.example.com:443' && x.close === 'timeout')).toBe(true);
  });

  test('an idle spliced tunnel is closed after limits.client_idle_timeout', async () => {
    const reply = await exchange(gw.explicitPort, `CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: origin.test\r\n\r\n`, { timeoutMs: 6000 });
    expect(reply.data).toMatch(/^HTTP\/1\.1 200 Connection Established[\s\S]*hello from limits/);
    expect(reply.closedAfterMs).toBeGreaterThanOrEqual(1400);
    expect(reply.closedAfterMs).toBeLessThan(4500);
    await eventually(
      () => breaches.seen.length,
      () => breaches.seen.some((b) => b.limit === 'client_idle_timeout'),
    );
    expect(breaches.seen).toContainEqual({ limit: 'client_idle_timeout', frontend: 'explicit-connect' });
    expect(limitLogged(gw, 'limits.client_idle_timeout')).toBe(true);
  });

  test('CONNECT to an origin that never completes the TCP handshake: 504 after upstream.connect_timeout', async () => {
    const started = Date.now();
    const reply = await exchange(gw.explicitPort, `CONNECT blackhole.test:${blackholePort} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 5000 });
    expect(reply.data).toMatch(/^HTTP\/1\.1 504 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(limitLogged(gw, 'upstream.connect_timeout')).toBe(true);
    expect(breaches.seen).toContainEqual({ limit: 'connect_timeout', frontend: 'explicit-connect' });
  });

  test('plain HTTP to that origin: 504 after upstream.connect_timeout', async () => {
    const before = breaches.seen.filter((b) => b.limit === 'connect_timeout' && b.frontend === 'explicit-http').length;
    const started = Date.now();
    const res = await curl(['-x', gw.proxy, `http://blackhole.test:${blackholePort}/hello`]);
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(breaches.seen.filter((b) => b.limit === 'connect_timeout' && b.frontend === 'explicit-http').length).toBe(before + 1);
  });

  test('connections over limits.max_connections_per_client and limits.max_connections get 503', async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await openIdle(gw.explicitPort, '127.0.0.1'));
      const perClient = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`, { localAddress: '127.0.0.1' });
      expect(perClient.data).toMatch(/^HTTP\/1\.1 503 /);
      expect(perClient.data).toMatch(/limits\.max_connections_per_client/);
      expect(limitLogged(gw, 'limits.max_connections_per_client')).toBe(true);
      // Another client address still gets in, up to the global limit (6).
      for (let i = 0; i < 3; i++) held.push(await openIdle(gw.explicitPort, '127.0.0.2'));
      const global = await exchange(gw.explicitPort, `GET ${url()} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`, { localAddress: '127.0.0.3' });
      expect(global.data).toMatch(/^HTTP\/1\.1 503 /);
      expect(global.data).toMatch(/limits\.max_connections\)/);
      expect(breaches.seen).toContainEqual({ limit: 'max_connections', frontend: 'explicit' });
      expect(gw.gateway.connections.openConnections).toBe(6);
      // Both refusals are in the audit trail (docs/audit.md: close refused, limits).
      const overloaded = await eventually(
        async () => (await gw.audit()).filter((r) => r.type === 'connection' && String(r.error).startsWith('TG_ERR_OVERLOADED: ')),
        (records) => records.length >= 2,
      );
      expect(overloaded).toEqual([
        expect.objectContaining({ frontend: 'explicit-http', client: '127.0.0.1', close: 'refused', action: 'none', error: expect.stringMatching(/limits\.max_connections_per_client/) }),
        expect.objectContaining({ frontend: 'explicit-http', client: '127.0.0.3', close: 'refused', action: 'none', error: expect.stringMatching(/limits\.max_connections\)/) }),
      ]);
      expect(overloaded.every((r) => r.type === 'connection' && r.bytes_to_client > 0)).toBe(true);
    } finally {
      for (const socket of held) socket.destroy();
    }
    // Released on close: the gateway serves again.
    await eventually(
      () => gw.gateway.connections.openConnections,
      (n) => n === 0,
    );
    expect((await curl(['-x', gw.proxy, url()])).status).toBe(200);
  });
});
