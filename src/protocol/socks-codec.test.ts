import { execFile } from 'node:child_process';
import net from 'node:net';
import {
  type SocksParseResult,
  type SocksTarget,
  detectSocksVersion,
  encodeSocks4Reply,
  encodeSocks5AuthStatus,
  encodeSocks5MethodSelection,
  encodeSocks5Reply,
  formatIpv6,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  parseSocks5UserPass,
  socks5ReplyCodeForInvalid,
} from './socks-codec';

type Parser<T> = (input: Buffer) => SocksParseResult<T>;

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function ascii(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function expectParsed<T>(result: SocksParseResult<T>, value: T, consumed: number): void {
  expect(result).toEqual({ kind: 'parsed', value, consumed });
}

function expectInvalid<T>(result: SocksParseResult<T>, code: string, reason: RegExp): void {
  expect(result).toMatchObject({ kind: 'invalid', code });
  if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
}

/** The framing every message must have: needMore for each strict prefix, exact `consumed` with pipelined bytes after it. */
function expectExactFraming<T>(parse: Parser<T>, message: Buffer): void {
  for (let length = 0; length < message.length; length += 1) {
    expect({ length, result: parse(message.subarray(0, length)) }).toEqual({ length, result: { kind: 'needMore' } });
  }
  const alone = parse(message);
  expect(alone).toMatchObject({ kind: 'parsed', consumed: message.length });
  const pipelined = parse(Buffer.concat([message, hex('05 01 00 03 ff 00 47 45 54 20')]));
  expect(pipelined).toEqual(alone);
}

// Bytes as curl 7.88.1 sends them, recorded from a loopback server. The greeting offers GSSAPI
// (0x01) because that curl build has it; others offer only 0x00, or 0x00 and 0x02.
const CURL = {
  socks5Greeting: hex('05 02 00 01'),
  socks5GreetingWithUser: hex('05 03 00 01 02'),
  socks5UserPass: hex('01 01 75 01 70'), // --proxy-user u:p
  socks5UserEmptyPass: hex('01 01 75 00'), // --proxy-user u:
  socks5Ipv4: hex('05 01 00 01 c0000201 1f90'), // --socks5 ... http://192.0.2.1:8080/
  socks5Ipv6: hex('05 01 00 04 20010db8000000000000000000000001 1f90'), // http://[2001:db8::1]:8080/
  socks5Domain: hex('05 01 00 03 0c 6578616d706c652e74657374 1f90'), // --socks5-hostname ... http://example.test:8080/
  socks4: hex('04 01 1f90 c0000201 00'), // --socks4 ... http://192.0.2.1:8080/
  socks4WithUser: hex('04 01 1f90 c0000201 616c696365 00'), // --proxy-user alice:
  socks4a: hex('04 01 1f90 00000001 00 6578616d706c652e74657374 00'), // --socks4a ... http://example.test:8080/
};

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
    const message = Buffer.concat([
      hex('01'),
      Buffer.from([Buffer.byteLength(username)]),
      Buffer.from(username),
      Buffer.from([Buffer.byteLength(password)]),
      Buffer.from(password),
    ]);
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
    expectParsed(
      parseSocks5Request(hex('05 03 00 01 00000000 0000')),
      { command: 'udp-associate', target: { kind: 'ipv4', address: '0.0.0.0', port: 0 } },
      10,
    );
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
    expectParsed(
      parseSocks5Request(Buffer.concat([hex('05 01 00 04'), hex(bytes), hex('01bb')])),
      { command: 'connect', target: { kind: 'ipv6', address: text, port: 443 } },
      22,
    );
  });
});

describe('parseSocks4Request', () => {
  it('parses what curl sends for SOCKS4 and SOCKS4a', () => {
    expectParsed(
      parseSocks4Request(CURL.socks4),
      { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: '', isSocks4a: false },
      9,
    );
    expectParsed(
      parseSocks4Request(CURL.socks4WithUser),
      { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: 'alice', isSocks4a: false },
      14,
    );
    expectParsed(
      parseSocks4Request(CURL.socks4a),
      { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 }, userId: '', isSocks4a: true },
      22,
    );
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
      expectInvalid(
        parseSocks4Request(Buffer.concat([hex('04 01 0050 00000001 00 61'), Buffer.from([bad])])),
        'malformed',
        new RegExp(`DOMAIN contains byte 0x${bad.toString(16).padStart(2, '0')}`),
      );
    }
  });

  it('decodes a UTF-8 USERID', () => {
    const message = Buffer.concat([hex('04 01 0050 c0000201'), Buffer.from('zoë'), hex('00')]);
    expect(parseSocks4Request(message)).toMatchObject({ kind: 'parsed', value: { userId: 'zoë' }, consumed: message.length });
  });

  it('caps USERID and DOMAIN at 255 bytes by default, and never waits past the cap for a NUL', () => {
    const header = hex('04 01 0050 c0000201');
    const header4a = hex('04 01 0050 00000001 00');
    for (const [start, label] of [[header, 'USERID'], [header4a, 'DOMAIN']] as const) {
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
    expect(encodeSocks5Reply(0x00, { kind: 'ipv6', address: '2001:db8::1', port: 443 })).toEqual(
      hex('05 00 00 04 20010db8000000000000000000000001 01bb'),
    );
    expect(encodeSocks5Reply(0x00, { kind: 'ipv6', address: '::ffff:192.0.2.7', port: 443 })).toEqual(
      hex('05 00 00 04 00000000000000000000ffffc0000207 01bb'),
    );
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

// ---------------------------------------------------------------------------------------------
// The same messages from the curl on this machine, if there is one: a loopback server runs the
// handshake with these parsers and records what it parsed.

interface Capture {
  readonly greeting?: SocksParseResult<unknown>;
  readonly credentials?: SocksParseResult<unknown>;
  readonly request?: SocksParseResult<unknown>;
}

const CURL_TIMEOUT_MS = 8000;

function isCurlAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('curl', ['--version'], { timeout: CURL_TIMEOUT_MS }, (error) => resolve(error === null));
  });
}

/** Answers one connection as a minimal server would, refusing the request once it has it. */
function serveOnce(socket: net.Socket, version: 4 | 5, record: (capture: Capture) => void): void {
  let buffered = Buffer.alloc(0);
  let step: 'greeting' | 'credentials' | 'request' | 'done' = version === 5 ? 'greeting' : 'request';
  const capture: { greeting?: SocksParseResult<unknown>; credentials?: SocksParseResult<unknown>; request?: SocksParseResult<unknown> } = {};
  const advance = (consumed: number): void => {
    buffered = buffered.subarray(consumed);
  };
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (step === 'greeting') {
      const greeting = parseSocks5Greeting(buffered);
      if (greeting.kind === 'needMore') return;
      capture.greeting = greeting;
      if (greeting.kind === 'invalid') return void socket.destroy();
      advance(greeting.consumed);
      const useCredentials = greeting.value.methods.includes(0x02);
      socket.write(encodeSocks5MethodSelection(useCredentials ? 0x02 : 0x00));
      step = useCredentials ? 'credentials' : 'request';
    }
    if (step === 'credentials') {
      const credentials = parseSocks5UserPass(buffered);
      if (credentials.kind === 'needMore') return;
      capture.credentials = credentials;
      if (credentials.kind === 'invalid') return void socket.destroy();
      advance(credentials.consumed);
      socket.write(encodeSocks5AuthStatus(true));
      step = 'request';
    }
    if (step === 'request') {
      const request = version === 5 ? parseSocks5Request(buffered) : parseSocks4Request(buffered);
      if (request.kind === 'needMore') return;
      capture.request = request;
      step = 'done';
      record(capture);
      socket.end(version === 5 ? encodeSocks5Reply(0x02) : encodeSocks4Reply(0x5b));
    }
  });
}

function withoutProxyEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (/_proxy$/i.test(name)) delete env[name];
  return env;
}

async function captureCurl(version: 4 | 5, curlArgs: (proxy: string) => readonly string[]): Promise<Capture> {
  let captured: Capture = {};
  const server = net.createServer((socket) => serveOnce(socket, version, (capture) => (captured = capture)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const proxy = typeof address === 'object' && address !== null ? `127.0.0.1:${address.port}` : '';
  try {
    await new Promise<void>((resolve) => {
      execFile('curl', ['-q', '-sS', '--max-time', '5', ...curlArgs(proxy)], { timeout: CURL_TIMEOUT_MS, env: withoutProxyEnvironment() }, () => resolve());
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return captured;
}

describe('live curl transcripts', () => {
  let curl = false;
  beforeAll(async () => {
    curl = await isCurlAvailable();
  });

  const cases: ReadonlyArray<{
    readonly name: string;
    readonly version: 4 | 5;
    readonly args: (proxy: string) => readonly string[];
    readonly expected: Capture;
  }> = [
    {
      name: 'curl --socks5 to an IPv4 address',
      version: 5,
      args: (proxy) => ['--socks5', proxy, 'http://192.0.2.1:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 } }, consumed: 10 } },
    },
    {
      name: 'curl --socks5 to an IPv6 address',
      version: 5,
      args: (proxy) => ['--socks5', proxy, 'http://[2001:db8:0:0:1:0:0:1]:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv6', address: '2001:db8::1:0:0:1', port: 8080 } }, consumed: 22 } },
    },
    {
      name: 'curl --socks5-hostname',
      version: 5,
      args: (proxy) => ['--socks5-hostname', proxy, 'http://example.test:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 } }, consumed: 19 } },
    },
    {
      name: 'curl --socks5 --proxy-user u:p',
      version: 5,
      args: (proxy) => ['--socks5', proxy, '--proxy-user', 'u:p', 'http://192.0.2.1:8080/'],
      expected: {
        credentials: { kind: 'parsed', value: { username: 'u', password: 'p' }, consumed: 5 },
        request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 } }, consumed: 10 },
      },
    },
    {
      name: 'curl --socks4',
      version: 4,
      args: (proxy) => ['--socks4', proxy, 'http://192.0.2.1:8080/'],
      expected: {
        request: {
          kind: 'parsed',
          value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: '', isSocks4a: false },
          consumed: 9,
        },
      },
    },
    {
      name: 'curl --socks4a',
      version: 4,
      args: (proxy) => ['--socks4a', proxy, 'http://example.test:8080/'],
      expected: {
        request: {
          kind: 'parsed',
          value: { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 }, userId: '', isSocks4a: true },
          consumed: 22,
        },
      },
    },
  ];

  it.each(cases)('$name', async ({ version, args, expected }) => {
    if (!curl) return; // No curl here: the recorded transcripts above still cover these bytes.
    const captured = await captureCurl(version, args);
    expect(captured).toMatchObject(expected);
    if (version === 5) expect(captured.greeting).toMatchObject({ kind: 'parsed', value: { methods: expect.arrayContaining([0x00]) } });
  }, 20000);
});
