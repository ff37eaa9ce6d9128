import { reachesListener } from './loop-check';

describe('loop check: is a dialled address one of our listeners?', () => {
  const interfaces = (): string[] => ['127.0.0.1', '::1', '192.0.2.10', '2001:db8::10', 'fe80::1'];
  const PORT = 3128;
  const check = (listener: string, dialled: string, port = PORT): boolean => reachesListener(dialled, port, [{ address: listener, port: PORT }], interfaces);

  test.each([
    // [listener bound to, address dialled, loop?]
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '::ffff:127.0.0.1', true],
    ['127.0.0.1', '::ffff:7f00:1', true],
    ['127.0.0.1', '0:0:0:0:0:ffff:7f00:1', true],
    ['127.0.0.1', '0.0.0.0', true],
    ['127.0.0.1', '::', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['127.0.0.1', '192.0.2.10', false],
    ['::1', '::1', true],
    ['::1', '0:0:0:0:0:0:0:1', true],
    ['::1', '0::1', true],
    ['::1', '127.0.0.1', false],
    ['192.0.2.10', '::ffff:192.0.2.10', true],
    ['192.0.2.10', '192.0.2.11', false],
    ['2001:db8::10', '2001:DB8:0:0::10', true],
    ['0.0.0.0', '127.9.9.9', true],
    ['0.0.0.0', '::ffff:127.0.0.1', true],
    ['0.0.0.0', '192.0.2.10', true],
    ['0.0.0.0', '::ffff:192.0.2.10', true],
    ['0.0.0.0', '::1', true],
    ['0.0.0.0', '198.51.100.1', false],
    ['::', '::ffff:127.0.0.1', true],
    ['::', '0:0:0:0:0:0:0:1', true],
    ['::', '2001:db8:0::10', true],
    ['::', 'fe80::1%eth0', true],
    ['::', '::ffff:198.51.100.1', false],
    ['::', '2001:db8::11', false],
  ])('listener %s, dialled %s -> %s', (listener, dialled, loop) => {
    expect(check(listener, dialled)).toBe(loop);
  });

  test('another port is never a loop, whatever the address', () => {
    expect(check('0.0.0.0', '127.0.0.1', PORT + 1)).toBe(false);
    expect(check('127.0.0.1', '0.0.0.0', PORT + 1)).toBe(false);
  });

  test('text that is not an address is left to the destination guard', () => {
    expect(check('0.0.0.0', 'localhost')).toBe(false);
  });
});
