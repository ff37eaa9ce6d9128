import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello';
import { expectInvalid, ext, frame, hello, loadCapture, sniExt, unframe } from './testdata/client-hellos';
import { handshake, record } from './testdata/tls-encoding';

// Record framing and handshake reassembly: what is refused before the hello body is read.

describe('parseClientHello refuses', () => {
  const valid = loadCapture('openssl-sni-alpn');

  test('an oversize hello (padding past 16 KiB) as soon as its handshake header arrives', () => {
    const oversize = hello({ extensions: [sniExt('example.com'), ext(21, Buffer.alloc(17_000))] });
    expectInvalid(parseClientHello(oversize), /^ClientHello larger than 16384 bytes$/);
    expectInvalid(parseClientHello(oversize.subarray(0, 9)), /larger than 16384/);
  });

  test('an endless run of small records', () => {
    const message = handshake(Buffer.alloc(MAX_CLIENT_HELLO_BYTES - 100));
    const tiny = frame(
      message,
      Array.from({ length: 4000 }, () => 1),
    );
    expectInvalid(parseClientHello(tiny), /larger than 16384/);
  });

  test.each<[string, Buffer, RegExp]>([
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'), /not a TLS handshake record/],
    ['a lone HTTP method letter', Buffer.from('C'), /not a TLS handshake record/],
    ['random bytes', Buffer.from('9f1c77a02b44de015a6e', 'hex'), /SSLv2|not a TLS handshake/],
    ['an SSLv2 hello', Buffer.from('802e0103010015000000100100800200800300800400800500800600400700c0', 'hex'), /SSLv2/],
    ['an alert record', Buffer.from('15030100020228', 'hex'), /content type 21/],
    ['a change_cipher_spec record', Buffer.from('140303000101', 'hex'), /content type 20/],
    ['record version major 2', Buffer.from('16020100', 'hex'), /major/],
    ['a zero-length record', Buffer.from('1603010000', 'hex'), /empty TLS record/],
    ['a record longer than 2^14+256', Buffer.from('1603034101', 'hex'), /exceeds/],
    ['a ServerHello', record(handshake(Buffer.alloc(40), 2)), /type 2 is not ClientHello/],
    ['a non-ClientHello type on its first byte', Buffer.from('16030100050b', 'hex'), /type 11/],
  ])('%s', (_name, bytes, reason) => {
    expectInvalid(parseClientHello(bytes), reason);
  });

  test('an alert interleaved between fragments of the hello', () => {
    const message = unframe(valid);
    const bytes = Buffer.concat([record(message.subarray(0, 50)), Buffer.from('15030100020228', 'hex'), record(message.subarray(50))]);
    expectInvalid(parseClientHello(bytes), /content type 21 interleaved/);
    // Refused as soon as the interleaved record's first byte arrives.
    expectInvalid(parseClientHello(bytes.subarray(0, 56)), /interleaved/);
  });

  test('a later record with a bad version', () => {
    const message = unframe(valid);
    const second = record(message.subarray(50));
    second.writeUInt8(4, 1);
    expectInvalid(parseClientHello(Buffer.concat([record(message.subarray(0, 50)), second])), /major/);
  });

  test('handshake data after the ClientHello in its last record', () => {
    const message = unframe(valid);
    expectInvalid(parseClientHello(record(Buffer.concat([message, Buffer.from([20, 0, 0, 0])]))), /after the ClientHello/);
  });
});
