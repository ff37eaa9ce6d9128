import { loadPac } from '../../test/integration/support/pac-runtime';
import { buildPac } from './pac';

describe('proxy.pac', () => {
  const pac = buildPac({ direct: ['intranet.corp.example', '.internal.example', '*.lab.example', '10.0.0.0/8', '192.168.1.7'], proxyAddress: 'proxy.corp.example:3128' });
  const find = loadPac(pac, { 'resolves-to-ten.example': '10.1.2.3' });
  const PROXY = 'PROXY proxy.corp.example:3128';

  test.each([
    ['https://example.com/', 'example.com', PROXY],
    ['https://intranet.corp.example/', 'intranet.corp.example', 'DIRECT'],
    ['https://INTRANET.corp.example./', 'INTRANET.corp.example.', 'DIRECT'],
    ['https://a.intranet.corp.example/', 'a.intranet.corp.example', PROXY],
    ['http://internal.example/', 'internal.example', 'DIRECT'],
    ['http://wiki.internal.example/', 'wiki.internal.example', 'DIRECT'],
    ['http://notinternal.example/', 'notinternal.example', PROXY],
    ['http://lab.example/', 'lab.example', PROXY],
    ['http://dev.lab.example/', 'dev.lab.example', 'DIRECT'],
    ['http://10.20.30.40/', '10.20.30.40', 'DIRECT'],
    ['http://11.0.0.1/', '11.0.0.1', PROXY],
    ['http://192.168.1.7/', '192.168.1.7', 'DIRECT'],
    ['http://192.168.1.8/', '192.168.1.8', PROXY],
    // A name is never resolved to decide (isInNet would make browsers query DNS per URL).
    ['http://resolves-to-ten.example/', 'resolves-to-ten.example', PROXY],
    ['http://localhost:8080/', 'localhost', 'DIRECT'],
    ['http://127.0.0.1/', '127.0.0.1', 'DIRECT'],
  ])('%s -> %s', (url, host, expected) => {
    expect(find(url, host)).toBe(expected);
  });

  // Loopback goes DIRECT as an address only: a name that merely starts with "127." is anyone's
  // DNS name and must go through the gateway.
  test.each([
    ['http://127.1.2.3/', '127.1.2.3', 'DIRECT'],
    ['http://127.255.255.255/', '127.255.255.255', 'DIRECT'],
    ['http://[::1]:8080/', '::1', 'DIRECT'],
    ['http://[::1]:8080/', '[::1]', 'DIRECT'],
    ['http://LOCALHOST./', 'LOCALHOST.', 'DIRECT'],
    ['https://127.evil.example/', '127.evil.example', PROXY],
    ['https://127.0.0.1.evil.example/', '127.0.0.1.evil.example', PROXY],
    ['https://127.0.0.evil/', '127.0.0.evil', PROXY],
    ['https://127.example/', '127.example', PROXY],
    ['https://127.0.0.1evil.example/', '127.0.0.1evil.example', PROXY],
    ['https://127.0.0.256/', '127.0.0.256', PROXY],
    // The dots of the address pattern must be literal dots in the generated file.
    ['http://127x0y0z1/', '127x0y0z1', PROXY],
    ['http://127-1-2-3/', '127-1-2-3', PROXY],
    ['https://localhost.evil.example/', 'localhost.evil.example', PROXY],
    ['https://127/', '127', PROXY],
  ])('loopback as an address: %s (%s) -> %s', (url, host, expected) => {
    expect(find(url, host)).toBe(expected);
  });

  test('no DIRECT fallback after the proxy: a down gateway must not mean uncontrolled egress', () => {
    expect(find('https://example.com/', 'example.com')).not.toContain('DIRECT');
  });

  test('an empty direct list is still valid JavaScript', () => {
    expect(loadPac(buildPac({ direct: [], proxyAddress: '[2001:db8::1]:3128' }))('https://a.example/', 'a.example')).toBe('PROXY [2001:db8::1]:3128');
  });

  test('the runtime rejects a broken PAC (the check can fail)', () => {
    expect(() => loadPac('function FindProxyForURL(url, host) { return ')).toThrow();
  });
});
