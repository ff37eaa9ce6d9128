import type { SocksTarget } from './socks-wire';
import { encodeSocks5AuthStatus, encodeSocks5MethodSelection, encodeSocks5Reply, parseSocks5Greeting, parseSocks5Request, parseSocks5UserPass, socks5ReplyCodeForInvalid } from './socks5-codec';
import { formatIpv6 } from './socks-fields';
import { CURL, ascii, expectExactFraming, expectInvalid, expectParsed, hex } from './testdata/socks-messages';

describe('parseSocks5Greeting', () => {
  it('parses what curl sends', () => {
    expectParsed(parseSocks5Greeting(CURL.socks5Greeting), { methods: [0x00, 0x01] }, 4);
    expectParsed(parseSocks5Greeting(CURL.socks5GreetingWithUser), { methods: [0x00, 0x01, 0x02] }, 5);
  });

  it('frames exactly', () => {
    expectExactFraming(parseSocks5Greeting, CURL.socks5Greeting);
    expectExactFraming(parseSocks5Greeting, Buffer.concat([hex('05 ff'), Buffer.alloc(255, 0x02)]));
  });

  it('refuses NMETHODS 0 and other versions', () => {
    expectInvalid(parseSocks5Greeting(hex('05 00')), 'malformed', /NMETHODS 0/);
    expectInvalid(parseSocks5Greeting(hex('05 00 00')), 'malformed', /NMETHODS 0/);
    expectInvalid(parseSocks5Greeting(hex('04')), 'malformed', /version 4/);
    expectInvalid(parseSocks5Greeting(CURL.socks4), 'malformed', /version 4/);
  });
});

describe('parseSocks5UserPass', () => {
  it('parses what curl sends, including an empty password', () => {
    expectParsed(parseSocks5UserPass(CURL.socks5UserPass), { username: 'u', password: 'p' }, 5);
    expectParsed(parseSocks5UserPass(CURL.socks5UserEmptyPass), { username: 'u', password: '' }, 4);
    expectParsed(parseSocks5UserPass(hex('01 00 00')), { username: '', password: '' }, 3);
  });

  it('frames exactly', () => {
    expectExactFraming(parseSocks5UserPass, CURL.socks5UserPass);
    const longest = Buffer.concat([hex('01 ff'), Buffer.alloc(255, 0x61), hex('ff'), Buffer.alloc(255, 0x62)]);
    expectExactFraming(parseSocks5UserPass, longest);
    expect(parseSocks5UserPass(longest)).toMatchObject({ consumed: 513 });
  });

  it('decodes UTF-8 and keeps spaces and punctuation', () => {
    const username = 'zoë admin';
    const password = 'pa ss:wörd\u0000\n🔑';
    const message = Buffer.concat([hex('01'), Buffer.from([Buffer.byteLength(username)]), Buffer.from(username), Buffer.from([Buffer.byteLength(password)]), Buffer.from(password)]);
    expectParsed(parseSocks5UserPass(message), { username, password }, message.length);
  });

  it('refuses other versions, control characters in the user name and bytes that are not UTF-8', () => {
    expectInvalid(parseSocks5UserPass(hex('05 01 75 01 70')), 'malformed', /version 5, expected 1/);
    expectInvalid(parseSocks5UserPass(hex('01 03 61 0a 62')), 'malformed', /username contains byte 0x0a/);
    // Refused as soon as the byte arrives, before the rest of the message.
    expectInvalid(parseSocks5UserPass(hex('01 05 61 00')), 'malformed', /username contains byte 0x00/);
    expectInvalid(parseSocks5UserPass(hex('01 02 61 7f 00')), 'malformed', /username contains byte 0x7f/);
    expectInvalid(parseSocks5UserPass(hex('01 01 c3 00')), 'malformed', /username is not UTF-8/);
    expectInvalid(parseSocks5UserPass(hex('01 01 61 02 ff fe')), 'malformed', /password is not UTF-8/);
  });
});

describe('parseSocks5Request', () => {
  it('parses what curl sends for each address type', () => {
    expectParsed(parseSocks5Request(CURL.socks5Ipv4), { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 } }, 10);
    expectParsed(parseSocks5Request(CURL.socks5Ipv6), { command: 'connect', target: { kind: 'ipv6', address: '2001:db8::1', port: 8080 } }, 22);
    expectParsed(parseSocks5Request(CURL.socks5Domain), { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 } }, 19);
  });

  it('frames exactly', () => {
    expectExactFraming(parseSocks5Request, CURL.socks5Ipv4);
    expectExactFraming(parseSocks5Request, CURL.socks5Ipv6);
    expectExactFraming(parseSocks5Request, CURL.socks5Domain);
    expectExactFraming(parseSocks5Request, Buffer.concat([hex('05 01 00 03 ff'), Buffer.alloc(255, 0x61), hex('01bb')]));
  });

  it('names the known commands and passes others through as numbers', () => {
    const target: SocksTarget = { kind: 'ipv4', address: '192.0.2.1', port: 8080 };
    expectParsed(parseSocks5Request(hex('05 02 00 01 c0000201 1f90')), { command: 'bind', target }, 10);
    expectParsed(parseSocks5Request(hex('05 03 00 01 c0000201 1f90')), { command: 'udp-associate', target }, 10);
    expectParsed(parseSocks5Request(hex('05 09 00 01 c0000201 1f90')), { command: 9, target }, 10);
    expectParsed(parseSocks5Request(hex('05 00 00 01 c0000201 1f90')), { command: 0, target }, 10);
  });

  it('keeps the name as sent, without normalising it', () => {
    const name = 'Example.TEST.';
    const message = Buffer.concat([hex('05 01 00 03'), Buffer.from([name.length]), ascii(name), hex('0050')]);
    expectParsed(parseSocks5Request(message), { command: 'connect', target: { kind: 'domain', name, port: 80 } }, message.length);
  });

  it('refuses port 0 for connect and bind, and allows it for UDP ASSOCIATE (RFC 1928 section 4)', () => {
    expectInvalid(parseSocks5Request(hex('05 01 00 01 c0000201 0000')), 'port-zero', /port 0/);
    expectInvalid(parseSocks5Request(hex('05 02 00 03 01 61 0000')), 'port-zero', /port 0/);
    expectParsed(parseSocks5Request(hex('05 03 00 01 00000000 0000')), { command: 'udp-associate', target: { kind: 'ipv4', address: '0.0.0.0', port: 0 } }, 10);
  });

  it('refuses an unknown address type as soon as it is seen, with its own code', () => {
    for (const type of [0x00, 0x02, 0x05, 0xff]) {
      const result = parseSocks5Request(Buffer.from([0x05, 0x01, 0x00, type]));
      expectInvalid(result, 'address-type', new RegExp(`address type ${type}`));
      if (result.kind === 'invalid') expect(socks5ReplyCodeForInvalid(result)).toBe(0x08);
    }
    // Even with an unknown command: the length of the rest is unknown either way.
    expectInvalid(parseSocks5Request(hex('05 09 00 02 c0000201 1f90')), 'address-type', /address type 2/);
  });

  it('refuses other versions, a reserved byte other than 0 and an empty name', () => {
    expectInvalid(parseSocks5Request(hex('04 01 00 01 c0000201 1f90')), 'malformed', /version 4, expected 5/);
    expectInvalid(parseSocks5Request(hex('05 01 01')), 'malformed', /reserved byte is 0x01/);
    expectInvalid(parseSocks5Request(hex('05 01 00 03 00 0050')), 'malformed', /empty domain name/);
    expectInvalid(parseSocks5Request(hex('05 01 00 03 00')), 'malformed', /empty domain name/);
  });

  it('refuses names with spaces, control characters or bytes outside ASCII, as soon as they arrive', () => {
    for (const bad of [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x7f, 0x80, 0xc3, 0xff]) {
      const name = Buffer.from([0x61, bad, 0x62]);
      const complete = Buffer.concat([hex('05 01 00 03 03'), name, hex('0050')]);
      expectInvalid(parseSocks5Request(complete), 'malformed', new RegExp(`contains byte 0x${bad.toString(16).padStart(2, '0')}`));
      expect(parseSocks5Request(complete.subarray(0, 7))).toMatchObject({ kind: 'invalid' });
    }
  });

  it('maps every other invalid request to a general failure', () => {
    for (const message of [hex('05 01 01'), hex('05 01 00 01 c0000201 0000'), hex('05 01 00 03 00')]) {
      const result = parseSocks5Request(message);
      expect(result.kind).toBe('invalid');
      if (result.kind === 'invalid') expect(socks5ReplyCodeForInvalid(result)).toBe(0x01);
    }
  });
});

describe('IPv6 text (RFC 5952)', () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['20010db8000000000000000000020001', '2001:db8::2:1'], // section 4.2.1: longest run
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // section 4.2.2: a single 0 stays
    ['20010000000000010000000000000001', '2001:0:0:1::1'], // section 4.2.3: the longer run
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // section 4.2.3: leftmost on ties
    ['20010DB8AAAA000000000000000000FF', '2001:db8:aaaa::ff'], // section 4.3: lower case
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['00010000000000000000000000000000', '1::'],
    ['fe800000000000000000000000000001', 'fe80::1'],
    ['00010000000100000001000000010000', '1:0:1:0:1:0:1:0'],
    ['00000000000000000000ffff01020304', '::ffff:1.2.3.4'], // section 5: IPv4-mapped
    ['00000000000000000000000001020304', '::102:304'], // deprecated IPv4-compatible: plain hex
    ['0064ff9b000000000000000001020304', '64:ff9b::102:304'],
    ['ffffffffffffffffffffffffffffffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ];

  it.each(cases)('%s is %s', (bytes, text) => {
    expect(formatIpv6(hex(bytes))).toBe(text);
    expectParsed(parseSocks5Request(Buffer.concat([hex('05 01 00 04'), hex(bytes), hex('01bb')])), { command: 'connect', target: { kind: 'ipv6', address: text, port: 443 } }, 22);
  });
});

describe('reply encoders', () => {
  it('encodes method selection and authentication status', () => {
    expect(encodeSocks5MethodSelection(0x00)).toEqual(hex('05 00'));
    expect(encodeSocks5MethodSelection(0x02)).toEqual(hex('05 02'));
    expect(encodeSocks5MethodSelection(0xff)).toEqual(hex('05 ff'));
    expect(encodeSocks5MethodSelection(0x100)).toEqual(hex('05 ff'));
    expect(encodeSocks5MethodSelection(-1)).toEqual(hex('05 ff'));
    expect(encodeSocks5MethodSelection(1.5)).toEqual(hex('05 ff'));
    expect(encodeSocks5AuthStatus(true)).toEqual(hex('01 00'));
    expect(encodeSocks5AuthStatus(false)).toEqual(hex('01 01'));
  });

  it('encodes SOCKS5 replies', () => {
    expect(encodeSocks5Reply(0x00)).toEqual(hex('05 00 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x07)).toEqual(hex('05 07 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x08)).toEqual(hex('05 08 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv4', address: '192.0.2.7', port: 40000 })).toEqual(hex('05 00 00 01 c0000207 9c40'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv4', address: '::ffff:192.0.2.7', port: 443 })).toEqual(hex('05 00 00 01 c0000207 01bb'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv6', address: '2001:db8::1', port: 443 })).toEqual(hex('05 00 00 04 20010db8000000000000000000000001 01bb'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv6', address: '::ffff:192.0.2.7', port: 443 })).toEqual(hex('05 00 00 04 00000000000000000000ffffc0000207 01bb'));
  });

  it('fails closed on a SOCKS5 reply it cannot encode', () => {
    expect(encodeSocks5Reply(0x100)).toEqual(hex('05 01 00 01 00000000 0000'));
    expect(encodeSocks5Reply(-1)).toEqual(hex('05 01 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv4', address: '2001:db8::1', port: 443 })).toEqual(hex('05 00 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv6', address: '192.0.2.7', port: 443 })).toEqual(hex('05 00 00 01 00000000 0000'));
    expect(encodeSocks5Reply(0x00, { kind: 'ipv4', address: '192.0.2.7', port: -1 })).toEqual(hex('05 00 00 01 00000000 0000'));
  });

  it('produces replies a client-side parse would read back', () => {
    // A SOCKS5 reply has the request's layout with REP in place of CMD.
    const reply = encodeSocks5Reply(0x01, { kind: 'ipv6', address: '2001:DB8:0:0:1:0:0:1', port: 8080 });
    expectParsed(parseSocks5Request(reply), { command: 'connect', target: { kind: 'ipv6', address: '2001:db8::1:0:0:1', port: 8080 } }, 22);
  });
});
