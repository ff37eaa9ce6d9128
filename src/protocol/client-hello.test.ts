import { createServer, type AddressInfo, type Server } from 'node:net';
import { connect } from 'node:tls';
import { type ClientHello, MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello';
import type { ParseResult } from './parse-result';
import { ext, expectInvalid, expectParsed, frame, hello, type HelloSpec, helloBody, loadCapture, sniExt, unframe } from './testdata/client-hellos';
import { handshake, record, u16, u8 } from './testdata/tls-encoding';

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
      const listening = createServer((socket) => {
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (parseClientHello(buffered).kind === 'needMore') return;
          resolve(buffered);
          socket.destroy();
        });
        socket.on('error', reject);
      });
      server = listening;
      listening.listen(0, '127.0.0.1', () => {
        const { port } = listening.address() as AddressInfo;
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
  const body = (spec: HelloSpec): Buffer => record(handshake(helloBody(spec)));

  test.each<[string, Buffer, RegExp]>([
    ['a hello shorter than its random', record(handshake(Buffer.from([3, 3, 1, 2]))), /truncated ClientHello/],
    ['an empty hello body', record(handshake(Buffer.alloc(0))), /truncated ClientHello/],
    ['a session id longer than 32', body({ sessionId: Buffer.alloc(33) }), /legacy_session_id/],
    ['a session id overrunning the hello', record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(20), Buffer.alloc(5)]))), /legacy_session_id/],
    ['an odd cipher_suites length', body({ cipherSuites: Buffer.from([0x13, 0x01, 0x13]) }), /cipher_suites/],
    ['empty cipher_suites', body({ cipherSuites: Buffer.alloc(0) }), /cipher_suites/],
    ['cipher_suites overrunning the hello', record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(0), u16(200), Buffer.alloc(4)]))), /cipher_suites/],
    ['no compression methods', body({ compression: Buffer.alloc(0) }), /compression/],
  ])('%s', (_name, bytes, reason) => {
    expectInvalid(parseClientHello(bytes), reason);
  });
});
