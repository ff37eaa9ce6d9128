import { classifyFirstBytes } from './first-bytes';
import { loadCapture } from './testdata/client-hellos';

describe('classifyFirstBytes', () => {
  test.each<[string, Buffer, ReturnType<typeof classifyFirstBytes>]>([
    ['nothing', Buffer.alloc(0), 'needMore'],
    ['a captured ClientHello', loadCapture('curl-sni-alpn'), 'tls'],
    ['a TLS 1.0 record header', Buffer.from('160301', 'hex'), 'tls'],
    ['a TLS 1.2 record header', Buffer.from('160303', 'hex'), 'tls'],
    ['a lone 0x16', Buffer.from('16', 'hex'), 'needMore'],
    ['0x16 0x03', Buffer.from('1603', 'hex'), 'needMore'],
    ['0x16 with a non-3 major', Buffer.from('1602', 'hex'), 'unknown'],
    ['0x16 0x03 with a wild minor', Buffer.from('160342', 'hex'), 'unknown'],
    ['an SSLv2 hello', Buffer.from('802e01', 'hex'), 'unknown'],
    ['an alert record', Buffer.from('15030100020228', 'hex'), 'unknown'],
    ['GET', Buffer.from('GET / HTTP/1.1\r\n'), 'http'],
    ['CONNECT', Buffer.from('CONNECT example.com:443 HTTP/1.1\r\n'), 'http'],
    ['the HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http'],
    ['an unregistered uppercase method', Buffer.from('M-SEARCH * HTTP/1.1\r\n'), 'http'],
    ['a method without its space yet', Buffer.from('OPTIONS'), 'needMore'],
    ['a single uppercase letter', Buffer.from('P'), 'needMore'],
    // Some servers (Go's) take a method in any case: with the request-line shape, it is HTTP.
    ['a lowercase method', Buffer.from('get / HTTP/1.1\r\n'), 'http'],
    ['a mixed-case method, line not complete yet', Buffer.from('Post /upload HT'), 'needMore'],
    ['a lowercase word that is not a request line', Buffer.from('a001 LOGIN user secret\r\n'), 'unknown'],
    ['a leading space', Buffer.from(' GET /'), 'unknown'],
    // Empty lines before a request line are ignored by servers (RFC 9112 2.2), so here too.
    ['a leading CRLF', Buffer.from('\r\nGET /admin HTTP/1.1\r\n'), 'http'],
    ['leading bare LFs', Buffer.from('\n\nGET /admin HTTP/1.1\r\n'), 'http'],
    ['line ends only, so far', Buffer.from('\r\n\r\n'), 'needMore'],
    ['a CRLF and part of a method', Buffer.from('\r\nGE'), 'needMore'],
    ['more line ends than are waited on: taken for HTTP, its parser decides', Buffer.from(`${'\n'.repeat(17)}POST /`), 'http'],
    ['a method followed by a tab', Buffer.from('GET\t/'), 'unknown'],
    ['a digit first: any token is a method to some servers, so its line decides', Buffer.from('1GET /'), 'needMore'],
    ['a digit first, not a request line', Buffer.from('1GET /\r\n'), 'unknown'],
    ['an endless uppercase token', Buffer.from('A'.repeat(25)), 'unknown'],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), 'unknown'],
  ])('%s', (_name, bytes, expected) => {
    expect(classifyFirstBytes(bytes)).toBe(expected);
  });
});
