import { normaliseHost } from './host';
import { parseConnectAuthority, parseHostAndOptionalPort } from './target';

describe('normaliseHost', () => {
  test.each([
    ['Example.COM', { kind: 'name', name: 'example.com' }],
    ['example.com.', { kind: 'name', name: 'example.com' }],
    ['bücher.example', { kind: 'name', name: 'xn--bcher-kva.example' }],
    ['_dmarc.example.com', { kind: 'name', name: '_dmarc.example.com' }],
    ['127.0.0.1', { kind: 'ipv4', address: '127.0.0.1' }],
    ['2130706433', { kind: 'ipv4', address: '127.0.0.1' }],
    ['0177.0.0.1', { kind: 'ipv4', address: '127.0.0.1' }],
    ['0x7f.1', { kind: 'ipv4', address: '127.0.0.1' }],
    ['127.1', { kind: 'ipv4', address: '127.0.0.1' }],
    ['1.2.3.4.', { kind: 'ipv4', address: '1.2.3.4' }],
    ['[::1]', { kind: 'ipv6', address: '::1' }],
    ['[2001:DB8:0:0:0:0:0:1]', { kind: 'ipv6', address: '2001:db8::1' }],
    ['[::ffff:127.0.0.1]', { kind: 'ipv4', address: '127.0.0.1' }],
    ['[::ffff:7f00:1]', { kind: 'ipv4', address: '127.0.0.1' }],
    ['2001:db8::1', { kind: 'ipv6', address: '2001:db8::1' }],
  ])('%s', (input, expected) => {
    expect(normaliseHost(input)).toEqual({ ok: true, host: expected });
  });

  test.each([
    '',
    '[fe80::1%25eth0]',
    'fe80::1%eth0',
    'a..b',
    'exa mple.com',
    '1.2.3.256',
    'foo.1',
    '-bad.example',
    'ex%41mple.com',
    '*.example.com',
    'a\u0000b.com',
    `${'a'.repeat(64)}.com`,
    '[::1',
    'example.com..',
  ])('refuses %j', (input) => {
    const result = normaliseHost(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
  });
});

describe('parseConnectAuthority', () => {
  test.each([
    ['example.com:443', 'example.com', 443],
    ['EXAMPLE.com.:8443', 'example.com', 8443],
    ['[2001:db8::1]:443', '2001:db8::1', 443],
    ['203.0.113.7:443', '203.0.113.7', 443],
  ])('%s', (input, host, port) => {
    const result = parseConnectAuthority(input);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.target.host.kind === 'name' ? result.target.host.name : result.target.host.address).toBe(host);
      expect(result.target.port).toBe(port);
    }
  });

  test.each([
    ['example.com', /no port/],
    ['example.com:', /no port/],
    ['example.com:0', /1 to 65535/],
    ['example.com:65536', /1 to 65535/],
    ['example.com:+443', /1 to 65535/],
    ['user@example.com:443', /user information/],
    ['2001:db8::1:443', /not host:port/],
    ['[2001:db8::1]443', /not host:port/],
    ['example.com:443/path', /not allowed/],
    ['', /empty/],
  ])('refuses %j', (input, reason) => {
    const result = parseConnectAuthority(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  test('Host header forms take the default port', () => {
    expect(parseHostAndOptionalPort('example.com', 80)).toMatchObject({ ok: true, target: { port: 80 } });
    expect(parseHostAndOptionalPort('example.com:', 80)).toMatchObject({ ok: true, target: { port: 80 } });
    expect(parseHostAndOptionalPort('[::1]:8080', 80)).toMatchObject({ ok: true, target: { port: 8080, host: { kind: 'ipv6', address: '::1' } } });
  });
});
