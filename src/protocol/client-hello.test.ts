import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { type ClientHello, classifyFirstBytes, MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello';
import type { ParseResult } from './parse-result';
import { handshake, record, u16, u8, vec16, vec8 } from './testdata/tls-encoding';

// ---------------------------------------------------------------------------------------------
// Building blocks: TLS vectors, synthetic hellos and record framing.
// ---------------------------------------------------------------------------------------------

type Extension = readonly [type: number, data: Buffer];

function ext(type: number, data: Buffer): Extension {
  return [type, data];
}

function sniExt(name: string | Buffer): Extension {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
  return ext(0, vec16(Buffer.concat([u8(0), vec16(bytes)])));
}

function alpnExt(names: readonly string[]): Extension {
  return ext(16, vec16(Buffer.concat(names.map((name) => vec8(Buffer.from(name, 'latin1'))))));
}

function versionsExt(versions: readonly number[]): Extension {
  return ext(43, vec8(Buffer.concat(versions.map(u16))));
}

interface HelloSpec {
  readonly legacyVersion?: number;
  readonly sessionId?: Buffer;
  readonly cipherSuites?: Buffer;
  readonly compression?: Buffer;
  /** null: no extensions block at all (SSL 3.0 / TLS 1.0 style). */
  readonly extensions?: readonly Extension[] | null;
}

/** The ClientHello body per RFC 8446 section 4.1.2, without the handshake header. */
function helloBody(spec: HelloSpec): Buffer {
  const parts = [
    u16(spec.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xab),
    vec8(spec.sessionId ?? Buffer.alloc(32, 0x11)),
    vec16(spec.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f])),
    vec8(spec.compression ?? Buffer.from([0])),
  ];
  const extensions = spec.extensions === undefined ? [sniExt('example.com')] : spec.extensions;
  if (extensions !== null) {
    parts.push(vec16(Buffer.concat(extensions.map(([type, data]) => Buffer.concat([u16(type), vec16(data)])))));
  }
  return Buffer.concat(parts);
}

/** Frames a handshake message into records of the given fragment sizes (last one takes the rest). */
function frame(message: Buffer, fragmentSizes: readonly number[] = []): Buffer {
  const records: Buffer[] = [];
  let offset = 0;
  for (const size of fragmentSizes) {
    records.push(record(message.subarray(offset, offset + size)));
    offset += size;
  }
  for (; offset < message.length; offset += 2 ** 14) {
    records.push(record(message.subarray(offset, Math.min(message.length, offset + 2 ** 14))));
  }
  return Buffer.concat(records);
}

function hello(spec: HelloSpec = {}): Buffer {
  return frame(handshake(helloBody(spec)));
}

/** The handshake bytes carried by a stream of well-formed handshake records. */
function unframe(records: Buffer): Buffer {
  const payloads: Buffer[] = [];
  for (let offset = 0; offset < records.length; ) {
    const length = records.readUInt16BE(offset + 3);
    payloads.push(records.subarray(offset + 5, offset + 5 + length));
    offset += 5 + length;
  }
  return Buffer.concat(payloads);
}

function loadCapture(name: string): Buffer {
  return Buffer.from(readFileSync(join(__dirname, 'testdata', `${name}.hex`), 'utf8').trim(), 'hex');
}

function expectParsed(result: ParseResult<ClientHello>): ClientHello {
  if (result.kind !== 'parsed') throw new Error(`expected parsed, got ${JSON.stringify(result)}`);
  return result.value;
}

function expectInvalid(result: ParseResult<ClientHello>, reason: RegExp): void {
  expect(result.kind).toBe('invalid');
  if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
}

/** Feeds `chunks` the way a socket delivers them: the parser sees each accumulated buffer. */
function feedChunks(chunks: readonly Buffer[]): ParseResult<ClientHello>[] {
  const results: ParseResult<ClientHello>[] = [];
  let buffered = Buffer.alloc(0);
  for (const chunk of chunks) {
    buffered = Buffer.concat([buffered, chunk]);
    results.push(parseClientHello(buffered));
  }
  return results;
}

function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [0, ...cuts, bytes.length];
  return points.slice(1).map((end, i) => bytes.subarray(points[i] ?? 0, end));
}

// ---------------------------------------------------------------------------------------------
// Transcripts of real clients.
// ---------------------------------------------------------------------------------------------

interface Transcript {
  readonly capture: string;
  readonly sni: string | null;
  readonly alpn: readonly string[];
  readonly legacyVersion: number;
  readonly supportedVersions: readonly number[];
}

const TRANSCRIPTS: readonly Transcript[] = [
  { capture: 'openssl-sni-alpn', sni: 'www.example.com', alpn: ['h2', 'http/1.1'], legacyVersion: 0x0303, supportedVersions: [0x0304, 0x0303, 0x0302, 0x0301] },
  { capture: 'openssl-no-sni', sni: null, alpn: [], legacyVersion: 0x0303, supportedVersions: [0x0304, 0x0303, 0x0302, 0x0301] },
  { capture: 'openssl-tls12-mixed-case-sni', sni: 'legacy.example.net', alpn: [], legacyVersion: 0x0303, supportedVersions: [] },
  { capture: 'openssl-tls10', sni: 'tls10.example.com', alpn: [], legacyVersion: 0x0301, supportedVersions: [] },
  { capture: 'curl-sni-alpn', sni: 'api.example.org', alpn: ['h2', 'http/1.1'], legacyVersion: 0x0303, supportedVersions: [0x0304, 0x0303, 0x0302, 0x0301] },
  { capture: 'node-sni-alpn', sni: 'node.example.com', alpn: ['h2', 'http/1.1'], legacyVersion: 0x0303, supportedVersions: [0x0304, 0x0303] },
];

describe('parseClientHello on captured ClientHellos', () => {
  test.each(TRANSCRIPTS)('$capture', ({ capture, ...expected }) => {
    const bytes = loadCapture(capture);
    const result = parseClientHello(bytes);
    expect(result).toEqual({
      kind: 'parsed',
      consumed: bytes.length,
      value: { ...expected, hasEncryptedClientHello: false, recordBytes: bytes.length },
    });
  });

  test.each(TRANSCRIPTS)('$capture: every strict prefix, fed byte by byte, needs more', ({ capture }) => {
    const bytes = loadCapture(capture);
    for (let length = 0; length < bytes.length; length++) {
      expect(parseClientHello(bytes.subarray(0, length))).toEqual({ kind: 'needMore' });
    }
    expect(parseClientHello(bytes).kind).toBe('parsed');
  });

  test.each(TRANSCRIPTS)('$capture: re-framed into 3 records, each split across TCP chunks', ({ capture }) => {
    const original = loadCapture(capture);
    const message = unframe(original);
    const half = Math.floor(message.length / 2);
    const reframed = frame(message, [1, half]);
    const expected = expectParsed(parseClientHello(original));

    expect(parseClientHello(reframed)).toEqual({
      kind: 'parsed',
      consumed: original.length + 10,
      value: { ...expected, recordBytes: original.length + 10 },
    });

    // Cut inside the first record header, right after the 1-byte fragment, inside the second
    // header, in the middle of the second fragment and inside the third header.
    const secondEnd = 6 + 5 + half;
    const chunks = splitAt(reframed, [3, 6, 8, 9, 20, secondEnd, secondEnd + 3]);
    const results = feedChunks(chunks);
    expect(results.slice(0, -1).every((r) => r.kind === 'needMore')).toBe(true);
    expect(results.at(-1)).toEqual(parseClientHello(reframed));
  });

  test('handshake header split over single-byte records', () => {
    const original = loadCapture('openssl-sni-alpn');
    const reframed = frame(unframe(original), [1, 1, 1, 1, 1]);
    const value = expectParsed(parseClientHello(reframed));
    expect(value.sni).toBe('www.example.com');
    expect(value.recordBytes).toBe(original.length + 5 * 5);
  });

  test('trailing bytes after the hello are not consumed', () => {
    const original = loadCapture('curl-sni-alpn');
    const changeCipherSpec = record(Buffer.from([1]), 20, 0x0303);
    const applicationData = record(Buffer.alloc(40, 7), 23, 0x0303);
    for (const trailer of [changeCipherSpec, applicationData, original, Buffer.from('GET / HTTP/1.1\r\n')]) {
      const result = parseClientHello(Buffer.concat([original, trailer]));
      expect(result.kind === 'parsed' && result.consumed).toBe(original.length);
    }
    const reframed = frame(unframe(original), [100, 100]);
    const result = parseClientHello(Buffer.concat([reframed, changeCipherSpec]));
    expect(result.kind === 'parsed' && result.consumed).toBe(reframed.length);
  });

  test('a hello captured at runtime from Node tls.connect', async () => {
    const bytes = await captureNodeHello({ servername: 'Runtime.Example.COM', ALPNProtocols: ['h2', 'http/1.1', 'acme-tls/1'] });
    const value = expectParsed(parseClientHello(bytes));
    expect(value.sni).toBe('runtime.example.com');
    expect(value.alpn).toEqual(['h2', 'http/1.1', 'acme-tls/1']);
    expect(value.supportedVersions).toContain(0x0304);
    expect(value.recordBytes).toBe(bytes.length);
  });
});

/** Listens on loopback, lets Node's TLS client send its first flight, and returns those bytes. */
async function captureNodeHello(options: { servername: string; ALPNProtocols: string[] }): Promise<Buffer> {
  let server: Server | undefined;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let buffered = Buffer.alloc(0);
      server = createServer((socket) => {
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (parseClientHello(buffered).kind === 'needMore') return;
          resolve(buffered);
          socket.destroy();
        });
        socket.on('error', reject);
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server?.address() as AddressInfo;
        // Only the ClientHello this client sends is recorded; the capture server never completes a
        // handshake, so there is no certificate to verify.
        const client = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
        client.on('error', () => undefined);
      });
    });
  } finally {
    server?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Synthetic hellos: the shapes real clients send but our captures do not cover.
// ---------------------------------------------------------------------------------------------

describe('parseClientHello on synthetic ClientHellos', () => {
  test('no extensions at all (SSL 3.0 / TLS 1.0 style)', () => {
    const bytes = hello({ legacyVersion: 0x0300, extensions: null });
    expect(expectParsed(parseClientHello(bytes))).toEqual({
      sni: null,
      alpn: [],
      legacyVersion: 0x0300,
      supportedVersions: [],
      hasEncryptedClientHello: false,
      recordBytes: bytes.length,
    });
  });

  test('an empty extensions block', () => {
    expect(expectParsed(parseClientHello(hello({ extensions: [] }))).sni).toBeNull();
  });

  test('ECH outer hello: SNI is the public name', () => {
    const bytes = hello({ extensions: [sniExt('public.example.net'), ext(0xfe0d, Buffer.from([0, 0, 1, 0, 1, 7]))] });
    const value = expectParsed(parseClientHello(bytes));
    expect(value.hasEncryptedClientHello).toBe(true);
    expect(value.sni).toBe('public.example.net');
  });

  test('GREASE extensions, ALPN values and versions pass through', () => {
    const bytes = hello({
      extensions: [
        ext(0x0a0a, Buffer.alloc(0)),
        sniExt('grease.example'),
        alpnExt(['\x3a\x3a', 'h2']),
        versionsExt([0x7a7a, 0x0304, 0x0303]),
        ext(0xfafa, Buffer.from([0])),
      ],
    });
    const value = expectParsed(parseClientHello(bytes));
    expect(value.alpn).toEqual(['::', 'h2']);
    expect(value.supportedVersions).toEqual([0x7a7a, 0x0304, 0x0303]);
  });

  test('ALPN names are opaque bytes, one char per byte', () => {
    const value = expectParsed(parseClientHello(hello({ extensions: [alpnExt(['\xff\x00x'])] })));
    expect(value.alpn).toEqual(['\xff\x00x']);
  });

  test.each([
    ['WWW.Example.COM', 'www.example.com'],
    ['example.com.', 'example.com.'],
    ['_acme-challenge.example.com', '_acme-challenge.example.com'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['localhost', 'localhost'],
    ['10.0.0.1', '10.0.0.1'],
  ])('SNI %s is kept as sent, lower-cased', (sent, expected) => {
    expect(expectParsed(parseClientHello(hello({ extensions: [sniExt(sent)] }))).sni).toBe(expected);
  });

  test('server_name entries of unknown type are skipped', () => {
    const list = Buffer.concat([u8(7), vec16(Buffer.from('opaque')), u8(0), vec16(Buffer.from('real.example'))]);
    expect(expectParsed(parseClientHello(hello({ extensions: [ext(0, vec16(list))] }))).sni).toBe('real.example');
  });

  test('a hello of exactly maxBytes parses; one byte more is refused', () => {
    const base = hello({ extensions: [sniExt('example.com')] });
    const padding = MAX_CLIENT_HELLO_BYTES - base.length - 4;
    const exact = hello({ extensions: [sniExt('example.com'), ext(21, Buffer.alloc(padding))] });
    expect(exact.length).toBe(MAX_CLIENT_HELLO_BYTES);
    expect(parseClientHello(exact).kind).toBe('parsed');
    expect(parseClientHello(exact, exact.length - 1)).toEqual({ kind: 'invalid', reason: `ClientHello larger than ${exact.length - 1} bytes` });
  });

  test('maxBytes bounds a multi-record hello too', () => {
    const reframed = frame(unframe(loadCapture('node-sni-alpn')), [100, 100, 100]);
    expect(parseClientHello(reframed, reframed.length).kind).toBe('parsed');
    expectInvalid(parseClientHello(reframed, reframed.length - 1), /larger than/);
  });

  test.each([Number.NaN, -1, Number.POSITIVE_INFINITY])('maxBytes %p falls back to the default', (maxBytes) => {
    const oversize = hello({ extensions: [ext(21, Buffer.alloc(MAX_CLIENT_HELLO_BYTES))] });
    expectInvalid(parseClientHello(oversize, maxBytes), /larger than 16384 bytes/);
  });
});

// ---------------------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------------------

describe('parseClientHello refuses', () => {
  const valid = loadCapture('openssl-sni-alpn');

  test('an oversize hello (padding past 16 KiB) as soon as its handshake header arrives', () => {
    const oversize = hello({ extensions: [sniExt('example.com'), ext(21, Buffer.alloc(17_000))] });
    expectInvalid(parseClientHello(oversize), /^ClientHello larger than 16384 bytes$/);
    expectInvalid(parseClientHello(oversize.subarray(0, 9)), /larger than 16384/);
  });

  test('an endless run of small records', () => {
    const message = handshake(Buffer.alloc(MAX_CLIENT_HELLO_BYTES - 100));
    const tiny = frame(message, Array.from({ length: 4000 }, () => 1));
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

  const body = (spec: HelloSpec): Buffer => record(handshake(helloBody(spec)));
  const withTail = (spec: HelloSpec, tail: Buffer): Buffer => record(handshake(Buffer.concat([helloBody(spec), tail])));
  const rawExtensions = (block: Buffer): Buffer => {
    const base = helloBody({ extensions: null });
    return record(handshake(Buffer.concat([base, vec16(block)])));
  };

  test.each<[string, Buffer, RegExp]>([
    ['a hello shorter than its random', record(handshake(Buffer.from([3, 3, 1, 2]))), /truncated ClientHello/],
    ['an empty hello body', record(handshake(Buffer.alloc(0))), /truncated ClientHello/],
    ['a session id longer than 32', body({ sessionId: Buffer.alloc(33) }), /legacy_session_id/],
    ['a session id overrunning the hello', record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(20), Buffer.alloc(5)]))), /legacy_session_id/],
    ['an odd cipher_suites length', body({ cipherSuites: Buffer.from([0x13, 0x01, 0x13]) }), /cipher_suites/],
    ['empty cipher_suites', body({ cipherSuites: Buffer.alloc(0) }), /cipher_suites/],
    ['cipher_suites overrunning the hello', record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(0), u16(200), Buffer.alloc(4)]))), /cipher_suites/],
    ['no compression methods', body({ compression: Buffer.alloc(0) }), /compression/],
    ['a single byte where the extensions length belongs', withTail({ extensions: null }, Buffer.from([0])), /truncated extensions length/],
    ['an extensions length past the end', withTail({ extensions: null }, Buffer.from([0, 9, 0, 0])), /extensions length does not match/],
    ['bytes after the extensions block', withTail({ extensions: [] }, Buffer.from([0])), /extensions length does not match/],
    ['a truncated extension header', rawExtensions(Buffer.from([0, 16, 0])), /truncated extension header/],
    ['an extension overrunning the block', rawExtensions(Buffer.from([0, 16, 0, 9, 0])), /overruns/],
    ['duplicate extensions', body({ extensions: [alpnExt(['h2']), sniExt('a.example'), alpnExt(['h2'])] }), /duplicate extension 16/],
    ['duplicate unknown extensions', body({ extensions: [ext(0x1234, Buffer.alloc(0)), ext(0x1234, Buffer.alloc(0))] }), /duplicate/],
    ['an SNI extension with no data', body({ extensions: [ext(0, Buffer.alloc(0))] }), /malformed server_name list/],
    ['an empty SNI list', body({ extensions: [ext(0, vec16(Buffer.alloc(0)))] }), /malformed server_name list/],
    ['an SNI list length that disagrees', body({ extensions: [ext(0, Buffer.concat([u16(50), u8(0), vec16(Buffer.from('a.example'))]))] }), /malformed server_name list/],
    ['a truncated SNI entry', body({ extensions: [ext(0, vec16(Buffer.from([0, 0])))] }), /truncated server_name entry/],
    ['an SNI entry overrunning its list', body({ extensions: [ext(0, vec16(Buffer.concat([u8(0), u16(40), Buffer.from('a.example')])))] }), /overruns/],
    ['an SNI list with only unknown name types', body({ extensions: [ext(0, vec16(Buffer.concat([u8(9), vec16(Buffer.from('x'))])))] }), /no host_name/],
    ['an empty host_name', body({ extensions: [sniExt('')] }), /empty server_name/],
    ['a host_name with NUL', body({ extensions: [sniExt('evil.example\x00.good.example')] }), /not allowed/],
    ['a host_name with a space', body({ extensions: [sniExt('a b.example')] }), /not allowed/],
    ['a host_name with non-ASCII', body({ extensions: [sniExt(Buffer.from('bücher.example', 'utf8'))] }), /not allowed/],
    ['a host_name with a colon', body({ extensions: [sniExt('example.com:443')] }), /not allowed/],
    ['two host_names', body({ extensions: [ext(0, vec16(Buffer.concat([u8(0), vec16(Buffer.from('a.example')), u8(0), vec16(Buffer.from('b.example'))])))] }), /more than one host_name/],
    ['an empty ALPN name', body({ extensions: [alpnExt(['h2', ''])] }), /empty ALPN protocol name/],
    ['an empty ALPN list', body({ extensions: [ext(16, vec16(Buffer.alloc(0)))] }), /malformed ALPN/],
    ['an ALPN extension with no data', body({ extensions: [ext(16, Buffer.alloc(0))] }), /malformed ALPN/],
    ['an ALPN name overrunning its list', body({ extensions: [ext(16, vec16(Buffer.from([5, 0x68, 0x32])))] }), /overruns/],
    ['an odd supported_versions list', body({ extensions: [ext(43, vec8(Buffer.from([3, 4, 3])))] }), /supported_versions/],
    ['an empty supported_versions list', body({ extensions: [ext(43, vec8(Buffer.alloc(0)))] }), /supported_versions/],
    ['a supported_versions length that disagrees', body({ extensions: [ext(43, Buffer.from([4, 3, 4]))] }), /supported_versions/],
  ])('%s', (_name, bytes, reason) => {
    expectInvalid(parseClientHello(bytes), reason);
  });
});

// ---------------------------------------------------------------------------------------------
// classifyFirstBytes.
// ---------------------------------------------------------------------------------------------

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
    ['a lowercase method', Buffer.from('get / HTTP/1.1\r\n'), 'unknown'],
    ['a leading space', Buffer.from(' GET /'), 'unknown'],
    ['a method followed by a tab', Buffer.from('GET\t/'), 'unknown'],
    ['a digit first', Buffer.from('1GET /'), 'unknown'],
    ['an endless uppercase token', Buffer.from('A'.repeat(25)), 'unknown'],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), 'unknown'],
  ])('%s', (_name, bytes, expected) => {
    expect(classifyFirstBytes(bytes)).toBe(expected);
  });
});
