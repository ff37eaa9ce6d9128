import { Resolver } from '../../src/egress/resolve';
import type { GatewayError } from '../../src/errors/gateway-error';
import { startDnsServer, type DnsServer } from './support/dns-server';
import { startTestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { curl } from './support/run';

const name = (text: string) => ({ kind: 'name' as const, name: text });

describe('the resolver against a local DNS server', () => {
  let dns: DnsServer;

  beforeAll(async () => {
    dns = await startDnsServer({
      'dual.test': { a: ['192.0.2.1', '192.0.2.2'], aaaa: ['2001:db8::1'], ttl: 300 },
      'short.test': { a: ['192.0.2.3'], ttl: 1 },
      'pinned.test': { a: ['192.0.2.4'], ttl: 300 },
      'shared.test': { a: ['192.0.2.5'], ttl: 300 },
      'v6only.test': { aaaa: ['2001:db8::6'], ttl: 300 },
      'a.test': { a: ['192.0.2.7'], ttl: 300 },
      'b.test': { a: ['192.0.2.8'], ttl: 300 },
      'c.test': { a: ['192.0.2.9'], ttl: 300 },
    });
  });

  afterAll(() => dns.close());

  const resolver = (options: ConstructorParameters<typeof Resolver>[0] = {}) => new Resolver({ servers: [dns.address], timeoutMs: 2000, ...options });

  test('IPv4 answers first, then IPv6, in the order received; cached for their TTL', async () => {
    const r = resolver();
    expect(await r.resolve(name('dual.test'))).toEqual([
      { address: '192.0.2.1', family: 4 },
      { address: '192.0.2.2', family: 4 },
      { address: '2001:db8::1', family: 6 },
    ]);
    await r.resolve(name('dual.test'));
    await r.resolve(name('DUAL.test'.toLowerCase()));
    expect(dns.queries('dual.test', 'A')).toBe(1);
    expect(dns.queries('dual.test', 'AAAA')).toBe(1);
    expect(await r.resolve(name('v6only.test'))).toEqual([{ address: '2001:db8::6', family: 6 }]);
  });

  test('an answer is asked again once its TTL has passed', async () => {
    const r = resolver();
    await r.resolve(name('short.test'));
    await r.resolve(name('short.test'));
    expect(dns.queries('short.test', 'A')).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    await r.resolve(name('short.test'));
    expect(dns.queries('short.test', 'A')).toBe(2);
  });

  test('a name that does not exist is remembered briefly, then asked again', async () => {
    const r = resolver({ negativeTtlMs: 400 });
    await expect(r.resolve(name('nope.test'))).rejects.toMatchObject({ code: 'TG_ERR_DNS' });
    const first = dns.queries('nope.test');
    expect(first).toBeGreaterThan(0);
    const again = (await r.resolve(name('nope.test')).catch((err: GatewayError) => err)) as GatewayError;
    expect(again.code).toBe('TG_ERR_DNS');
    expect(again.message).toMatch(/no such name/);
    expect(dns.queries('nope.test')).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await expect(r.resolve(name('nope.test'))).rejects.toMatchObject({ code: 'TG_ERR_DNS' });
    expect(dns.queries('nope.test')).toBeGreaterThan(first);
  });

  test('upstream.hosts is consulted before DNS', async () => {
    const r = resolver({ hosts: { 'pinned.test': '203.0.113.9' } });
    expect(await r.resolve(name('pinned.test'))).toEqual([{ address: '203.0.113.9', family: 4 }]);
    expect(dns.queries('pinned.test')).toBe(0);
  });

  test('concurrent lookups of one name share one query', async () => {
    const r = resolver();
    const all = await Promise.all([1, 2, 3, 4, 5].map(() => r.resolve(name('shared.test'))));
    expect(all.every((a) => a[0]?.address === '192.0.2.5')).toBe(true);
    expect(dns.queries('shared.test', 'A')).toBe(1);
  });

  test('the cache is bounded', async () => {
    const r = resolver({ maxEntries: 2 });
    for (const n of ['a.test', 'b.test', 'c.test']) await r.resolve(name(n));
    expect(r.cacheSize).toBe(2);
    await r.resolve(name('a.test'));
    expect(dns.queries('a.test', 'A')).toBe(2);
  });
});

describe('the gateway resolves through upstream.dns_servers', () => {
  let dns: DnsServer;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('dns-origin');
    // 127.0.0.2 refuses (the origin listens on 127.0.0.1 only): the dialler moves on in order.
    dns = await startDnsServer({ 'site.test': { a: ['127.0.0.2', '127.0.0.1'], ttl: 300 } });
  });

  afterAll(async () => {
    await origin.close();
    await dns.close();
  });

  test('plain HTTP and CONNECT reach the origin by the second address; the answer is cached', async () => {
    const gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [origin.port] },
      upstreamSection: `upstream:\n  dns_servers: ["${dns.address}"]\n  allow_addresses: [127.0.0.0/8]\n  dns_negative_ttl: 1s`,
      policies: { 'site.yaml': 'rules:\n  - match: .test\n    action: splice\n' },
    });
    try {
      const plain = await curl(['-x', gw.proxy, `http://site.test:${origin.port}/hello`]);
      expect(plain.status).toBe(200);
      expect(plain.body).toBe('hello from dns-origin\n');
      const tunnelled = await curl(['-p', '-x', gw.proxy, `http://site.test:${origin.port}/hello`]);
      expect(tunnelled.status).toBe(200);
      expect(tunnelled.body).toBe('hello from dns-origin\n');
      expect(dns.queries('site.test', 'A')).toBe(1);
      const missing = await curl(['-x', gw.proxy, `http://missing.test:${origin.port}/hello`]);
      expect(missing.status).toBe(502);
      expect(missing.body).toMatch(/cannot resolve missing\.test/);
    } finally {
      await gw.stop();
    }
  });
});
