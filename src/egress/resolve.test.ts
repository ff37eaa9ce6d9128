import { Resolver } from './resolve';

describe('static host map', () => {
  // Closed nameserver: any query would fail, so these answers can only come from the map.
  const resolver = new Resolver({
    servers: ['127.0.0.1:9'],
    hosts: { 'Mapped.Example.': '::ffff:127.0.0.1', 'hex.example': '::ffff:7f00:1', 'long.example': '0:0:0:0:0:0:0:1', 'v6.example': '2001:DB8:0::1' },
  });

  test.each([
    ['mapped.example', { address: '127.0.0.1', family: 4 }],
    ['hex.example', { address: '127.0.0.1', family: 4 }],
    ['long.example', { address: '::1', family: 6 }],
    ['v6.example', { address: '2001:db8::1', family: 6 }],
  ])('%s is dialled in the form a literal would be', async (name, expected) => {
    expect(await resolver.resolve({ kind: 'name', name })).toEqual([expected]);
  });

  test.each(['127.1', 'fe80::1%eth0', 'example.com'])('"%s" is not accepted as an address', (address) => {
    expect(() => new Resolver({ hosts: { 'x.example': address } })).toThrow(/is not an IP address/);
  });
});
