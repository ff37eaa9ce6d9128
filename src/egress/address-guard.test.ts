import { AddressGuard } from './address-guard';

const guard = new AddressGuard([]);

describe('destination guard: refused ranges', () => {
  test.each([
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['169.254.0.1', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.254', 'carrierGradeNat'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.7', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['fe80::1', 'linkLocal'],
    ['fec0::1', 'deprecatedSiteLocal'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['100::1', 'discard'],
    // IPv4-mapped forms of internal addresses reach the IPv4 address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:100.64.0.1', 'carrierGradeNat'],
    // SIIT (RFC 6145) and NAT64 (RFC 6052) embed the IPv4 address in the last 32 bits.
    ['::ffff:0:a00:1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'linkLocal'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b:1::808:808', 'nat64LocalUse'],
    // 6to4 carries it in bits 16-47.
    ['2002:a9fe:a9fe::1', 'linkLocal'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
    // Teredo: server in bits 32-63, client inverted in the last 32 (here 10.0.0.1 and 127.0.0.1).
    ['2001:0:a00:1::808:808', 'private'],
    ['2001:0:808:808::80ff:fffe', 'loopback'],
    // IPv4-compatible (deprecated, ::/96) and the rest of ::/8.
    ['::a00:1', 'reserved'],
    ['::7f00:1', 'reserved'],
  ])('%s is refused (%s)', (address, range) => {
    const verdict = guard.check(address);
    expect(verdict.allowed).toBe(false);
    if (!verdict.allowed) {
      expect(verdict.range).toBe(range);
      expect(verdict.reason).toContain(address);
    }
  });

  test.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700::6810:84e5', '2a00:1450:4001:82a::200e', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '2001:0:808:808::f7f7:f7f7'])(
    '%s (public) is allowed',
    (address) => {
      expect(guard.check(address)).toEqual({ allowed: true });
    },
  );

  test('not an address: refused, never resolved', () => {
    for (const text of ['localhost', '', '127.1', '2130706433', '1.2.3.4.5', 'fe80::1%eth0']) {
      expect(guard.check(text).allowed).toBe(false);
    }
  });
});

describe('destination guard: upstream.allow_addresses', () => {
  const allowing = new AddressGuard(['127.0.0.0/8', '10.1.2.3', 'fd00:1::/32', '169.254.169.254/32']);

  test.each([
    ['127.0.0.1', true],
    ['127.9.9.9', true],
    ['::ffff:127.0.0.1', true],
    ['10.1.2.3', true],
    ['10.1.2.4', false],
    ['::ffff:10.1.2.4', false],
    ['fd00:1::5', true],
    ['fd00:2::5', false],
    ['169.254.169.254', true],
    ['169.254.169.253', false],
    ['64:ff9b::7f00:1', true],
    ['2002:7f00:1::', true],
    ['192.168.0.1', false],
    ['::1', false],
  ])('%s allowed: %s', (address, allowed) => {
    expect(allowing.check(address).allowed).toBe(allowed);
  });
});
