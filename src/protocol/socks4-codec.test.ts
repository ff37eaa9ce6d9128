import { encodeSocks4Reply, parseSocks4Request } from './socks4-codec';
import { CURL, expectExactFraming, expectInvalid, expectParsed, hex } from './testdata/socks-messages';

describe('parseSocks4Request', () => {
  it('parses what curl sends for SOCKS4 and SOCKS4a', () => {
    expectParsed(parseSocks4Request(CURL.socks4), { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: '', isSocks4a: false }, 9);
    expectParsed(parseSocks4Request(CURL.socks4WithUser), { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: 'alice', isSocks4a: false }, 14);
    expectParsed(parseSocks4Request(CURL.socks4a), { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 }, userId: '', isSocks4a: true }, 22);
  });

  it('frames exactly', () => {
    const parse = (input: Buffer) => parseSocks4Request(input);
    expectExactFraming(parse, CURL.socks4);
    expectExactFraming(parse, CURL.socks4WithUser);
    expectExactFraming(parse, CURL.socks4a);
    expectExactFraming(parse, hex('04 02 0015 000000ff 75736572 00 66747000'));
  });

  it('names CONNECT and BIND and passes other commands through as numbers', () => {
    expect(parseSocks4Request(hex('04 02 0015 c0000201 00'))).toMatchObject({ kind: 'parsed', value: { command: 'bind' } });
    expect(parseSocks4Request(hex('04 03 0015 c0000201 00'))).toMatchObject({ kind: 'parsed', value: { command: 3 } });
    expect(parseSocks4Request(hex('04 00 0000 c0000201 00'))).toMatchObject({ kind: 'parsed', value: { command: 0 } });
  });

  it('treats 0.0.0.x as SOCKS4a only when x is not 0', () => {
    expectInvalid(parseSocks4Request(hex('04 01 0050 00000000')), 'malformed', /0\.0\.0\.0/);
    expect(parseSocks4Request(hex('04 01 0050 00000100 00'))).toMatchObject({ kind: 'parsed', value: { isSocks4a: false, target: { address: '0.0.1.0' } } });
    expect(parseSocks4Request(hex('04 01 0050 000000ff 00'))).toEqual({ kind: 'needMore' });
  });

  it('refuses port 0, other versions and bad bytes', () => {
    expectInvalid(parseSocks4Request(hex('04 01 0000')), 'port-zero', /port 0/);
    expectInvalid(parseSocks4Request(hex('04 02 0000 c0000201 00')), 'port-zero', /port 0/);
    expectInvalid(parseSocks4Request(hex('05 01 0050 c0000201 00')), 'malformed', /version 5, expected 4/);
    expectInvalid(parseSocks4Request(hex('04 01 0050 c0000201 61 0a 62 00')), 'malformed', /USERID contains byte 0x0a/);
    expectInvalid(parseSocks4Request(hex('04 01 0050 c0000201 c3 00')), 'malformed', /USERID is not UTF-8/);
    expectInvalid(parseSocks4Request(hex('04 01 0050 00000001 00 00')), 'malformed', /DOMAIN is empty/);
    for (const bad of [0x0d, 0x20, 0x7f, 0x80]) {
      expectInvalid(parseSocks4Request(Buffer.concat([hex('04 01 0050 00000001 00 61'), Buffer.from([bad])])), 'malformed', new RegExp(`DOMAIN contains byte 0x${bad.toString(16).padStart(2, '0')}`));
    }
  });

  it('decodes a UTF-8 USERID', () => {
    const message = Buffer.concat([hex('04 01 0050 c0000201'), Buffer.from('zoë'), hex('00')]);
    expect(parseSocks4Request(message)).toMatchObject({ kind: 'parsed', value: { userId: 'zoë' }, consumed: message.length });
  });

  it('caps USERID and DOMAIN at 255 bytes by default, and never waits past the cap for a NUL', () => {
    const header = hex('04 01 0050 c0000201');
    const header4a = hex('04 01 0050 00000001 00');
    for (const [start, label] of [
      [header, 'USERID'],
      [header4a, 'DOMAIN'],
    ] as const) {
      const atCap = Buffer.concat([start, Buffer.alloc(255, 0x61)]);
      expect(parseSocks4Request(atCap)).toEqual({ kind: 'needMore' });
      expect(parseSocks4Request(Buffer.concat([atCap, hex('00')]))).toMatchObject({ kind: 'parsed', consumed: atCap.length + 1 });
      expectInvalid(parseSocks4Request(Buffer.concat([atCap, hex('61')])), 'malformed', new RegExp(`${label} longer than 255 bytes`));
      expectInvalid(parseSocks4Request(Buffer.concat([atCap, Buffer.alloc(4096, 0x61)])), 'malformed', /longer than 255 bytes/);
    }
  });

  it('takes its caps from the caller', () => {
    const limits = { maxUserIdBytes: 4, maxDomainBytes: 8 };
    expect(parseSocks4Request(hex('04 01 0050 c0000201 61616161 00'), limits)).toMatchObject({ kind: 'parsed' });
    expectInvalid(parseSocks4Request(hex('04 01 0050 c0000201 6161616161'), limits), 'malformed', /USERID longer than 4 bytes/);
    expect(parseSocks4Request(hex('04 01 0050 00000001 00 6161616161616161 00'), limits)).toMatchObject({ kind: 'parsed' });
    expectInvalid(parseSocks4Request(hex('04 01 0050 00000001 00 616161616161616161'), limits), 'malformed', /DOMAIN longer than 8 bytes/);
    // Nonsense limits fall back to the defaults rather than disabling the cap.
    const nonsense = { maxUserIdBytes: Number.NaN, maxDomainBytes: -1 };
    expectInvalid(parseSocks4Request(Buffer.concat([hex('04 01 0050 c0000201'), Buffer.alloc(256, 0x61)]), nonsense), 'malformed', /255/);
  });
});

describe('reply encoders', () => {
  it('encodes SOCKS4 replies with VN 0', () => {
    expect(encodeSocks4Reply(0x5a)).toEqual(hex('00 5a 0000 00000000'));
    expect(encodeSocks4Reply(0x5b)).toEqual(hex('00 5b 0000 00000000'));
    expect(encodeSocks4Reply(0x5c)).toEqual(hex('00 5c 0000 00000000'));
    expect(encodeSocks4Reply(0x5d)).toEqual(hex('00 5d 0000 00000000'));
    expect(encodeSocks4Reply(0x5a, { address: '10.1.2.3', port: 1080 })).toEqual(hex('00 5a 0438 0a010203'));
    expect(encodeSocks4Reply(0x5a, { address: '::ffff:10.1.2.3', port: 65535 })).toEqual(hex('00 5a ffff 0a010203'));
  });

  it('fails closed on a SOCKS4 reply it cannot encode', () => {
    expect(encodeSocks4Reply(0x00 as 0x5a)).toEqual(hex('00 5b 0000 00000000'));
    expect(encodeSocks4Reply(0x5a, { address: '2001:db8::1', port: 80 })).toEqual(hex('00 5a 0000 00000000'));
    expect(encodeSocks4Reply(0x5a, { address: '10.1.2.3', port: 65536 })).toEqual(hex('00 5a 0000 00000000'));
    expect(encodeSocks4Reply(0x5a, { address: 'example.test', port: 80 })).toEqual(hex('00 5a 0000 00000000'));
  });
});
