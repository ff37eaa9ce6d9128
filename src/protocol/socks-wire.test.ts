import { detectSocksVersion } from './socks-wire';
import { CURL, ascii, hex } from './testdata/socks-messages';

describe('detectSocksVersion', () => {
  it('reads the version from the first byte', () => {
    expect(detectSocksVersion(Buffer.alloc(0))).toBe('needMore');
    expect(detectSocksVersion(CURL.socks4)).toBe(4);
    expect(detectSocksVersion(CURL.socks5Greeting)).toBe(5);
    expect(detectSocksVersion(hex('04'))).toBe(4);
    expect(detectSocksVersion(hex('05'))).toBe(5);
  });

  it('refuses other protocols', () => {
    expect(detectSocksVersion(ascii('CONNECT example.test:443 HTTP/1.1\r\n'))).toBe('invalid');
    expect(detectSocksVersion(hex('16 03 01'))).toBe('invalid'); // TLS ClientHello
    expect(detectSocksVersion(hex('00'))).toBe('invalid');
  });
});
