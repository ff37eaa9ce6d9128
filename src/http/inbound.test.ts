import { withoutPseudoHeaders } from './inbound';

describe('withoutPseudoHeaders', () => {
  test('HTTP/1.1 lists are returned as they are', () => {
    const raw = ['Host', 'a', 'Cookie', 'x=1', 'Cookie', 'y=2'];
    expect(withoutPseudoHeaders(raw)).toBe(raw);
  });

  test('HTTP/2: pseudo-headers dropped, cookie fields joined with "; "', () => {
    const raw = [':method', 'GET', ':path', '/p?token=s', ':authority', 'a.test', 'cookie', 'x=1', 'accept', '*/*', 'cookie', 'y=2'];
    expect(withoutPseudoHeaders(raw)).toEqual(['cookie', 'x=1; y=2', 'accept', '*/*']);
  });
});
