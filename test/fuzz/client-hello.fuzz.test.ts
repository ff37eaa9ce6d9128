import fc from 'fast-check';
import { type ClientHello, MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../src/protocol/client-hello';
import type { ParseResult } from '../../src/protocol/parse-result';
import { handshake, record, u16, u8, vec16, vec8 } from '../../src/protocol/testdata/tls-encoding';

// ---------------------------------------------------------------------------------------------
// A generator of valid ClientHellos (RFC 8446 section 4.1.2) with known SNI / ALPN / versions.
// ---------------------------------------------------------------------------------------------

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(data)]);
}

/** Frames `message` into records whose fragment sizes cycle through `sizes`. */
function frame(message: Buffer, sizes: readonly number[] = [2 ** 14], versions: readonly number[] = [0x0301]): Buffer {
  const records: Buffer[] = [];
  for (let offset = 0, i = 0; offset < message.length; i++) {
    const size = Math.min(sizes[i % sizes.length] ?? 2 ** 14, 2 ** 14);
    records.push(record(message.subarray(offset, offset + size), 22, versions[i % versions.length]));
    offset += size;
  }
  return Buffer.concat(records);
}

interface GeneratedHello {
  readonly message: Buffer;
  readonly expected: Omit<ClientHello, 'recordBytes'>;
}

const KNOWN_EXTENSIONS = new Set([0, 16, 43, 0xfe0d]);
const HOST_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._'.split('');

const hostNameArb = fc.array(fc.constantFrom(...HOST_CHARS), { minLength: 1, maxLength: 100 }).map((chars) => chars.join(''));
const alpnArb = fc.array(fc.uint8Array({ minLength: 1, maxLength: 32 }), { minLength: 1, maxLength: 6 });
const versionsArb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 8 });
const otherExtensionsArb = fc.uniqueArray(
  fc.record({
    type: fc.integer({ min: 0, max: 0xffff }).filter((type) => !KNOWN_EXTENSIONS.has(type)),
    data: fc.uint8Array({ maxLength: 48 }),
  }),
  { selector: (ext) => ext.type, maxLength: 6 },
);

const helloPartsArb = fc.record({
  legacyVersion: fc.integer({ min: 0, max: 0xffff }),
  sessionId: fc.uint8Array({ maxLength: 32 }),
  cipherSuites: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 30 }),
  compression: fc.uint8Array({ minLength: 1, maxLength: 3 }),
  sni: fc.option(hostNameArb),
  alpn: fc.option(alpnArb),
  supportedVersions: fc.option(versionsArb),
  ech: fc.option(fc.uint8Array({ maxLength: 40 })),
  others: otherExtensionsArb,
  omitEmptyBlock: fc.boolean(),
  orderSeed: fc.array(fc.nat(), { minLength: 10, maxLength: 10 }),
});

type HelloParts = typeof helloPartsArb extends fc.Arbitrary<infer T> ? T : never;

function buildExtensions(parts: HelloParts): Buffer[] {
  const extensions: Buffer[] = [];
  if (parts.sni !== null) extensions.push(extension(0, vec16(Buffer.concat([u8(0), vec16(Buffer.from(parts.sni, 'latin1'))]))));
  if (parts.alpn !== null) extensions.push(extension(16, vec16(Buffer.concat(parts.alpn.map((name) => vec8(Buffer.from(name)))))));
  if (parts.supportedVersions !== null) extensions.push(extension(43, vec8(Buffer.concat(parts.supportedVersions.map(u16)))));
  if (parts.ech !== null) extensions.push(extension(0xfe0d, Buffer.from(parts.ech)));
  for (const other of parts.others) extensions.push(extension(other.type, Buffer.from(other.data)));
  // Extension order carries no meaning for the parser; shuffle it deterministically per case.
  const keyed = extensions.map((ext, i) => ({ ext, key: parts.orderSeed[i % parts.orderSeed.length] ?? i }));
  return keyed.sort((a, b) => a.key - b.key).map(({ ext }) => ext);
}

function buildHello(parts: HelloParts): GeneratedHello {
  const extensions = buildExtensions(parts);
  const fields = [u16(parts.legacyVersion), Buffer.alloc(32, 0x5a), vec8(Buffer.from(parts.sessionId)), vec16(Buffer.concat(parts.cipherSuites.map(u16))), vec8(Buffer.from(parts.compression))];
  if (extensions.length > 0 || !parts.omitEmptyBlock) fields.push(vec16(Buffer.concat(extensions)));
  return {
    message: handshake(Buffer.concat(fields)),
    expected: {
      sni: parts.sni === null ? null : parts.sni.toLowerCase(),
      alpn: parts.alpn === null ? [] : parts.alpn.map((name) => Buffer.from(name).toString('latin1')),
      legacyVersion: parts.legacyVersion,
      supportedVersions: parts.supportedVersions ?? [],
      hasEncryptedClientHello: parts.ech !== null,
    },
  };
}

const helloArb = helloPartsArb.map(buildHello);

function isResult(result: ParseResult<ClientHello>, inputLength: number): boolean {
  switch (result.kind) {
    case 'needMore':
      return true;
    case 'invalid':
      return typeof result.reason === 'string' && result.reason.length > 0;
    case 'parsed':
      return result.consumed > 0 && result.consumed <= inputLength && result.consumed === result.value.recordBytes;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

describe('parseClientHello properties', () => {
  test('never throws on arbitrary bytes, up to ~20 KiB', () => {
    const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 20 * 1024, size: 'max' }));
    fc.assert(
      fc.property(bytesArb, fc.option(fc.integer({ min: -10, max: 40_000 })), (bytes, maxBytes) => {
        const input = Buffer.from(bytes);
        const result = maxBytes === null ? parseClientHello(input) : parseClientHello(input, maxBytes);
        expect(isResult(result, input.length)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  test('never throws on arbitrary bytes behind plausible record and handshake headers', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 5 }), (body, sizes) => {
        const input = frame(handshake(Buffer.from(body)), sizes);
        expect(isResult(parseClientHello(input), input.length)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  test('a generated hello parses to exactly its fields; every strict prefix needs more', () => {
    fc.assert(
      fc.property(helloArb, ({ message, expected }) => {
        const bytes = frame(message);
        expect(parseClientHello(bytes)).toEqual({
          kind: 'parsed',
          consumed: bytes.length,
          value: { ...expected, recordBytes: bytes.length },
        });
        for (let length = 0; length < bytes.length; length++) {
          const prefix = parseClientHello(bytes.subarray(0, length));
          if (prefix.kind !== 'needMore') throw new Error(`prefix of ${length} bytes gave ${JSON.stringify(prefix)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('any re-fragmentation into records gives the same hello', () => {
    const sizesArb = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 });
    const versionsArb = fc.array(fc.integer({ min: 0x0300, max: 0x03ff }), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(helloArb, sizesArb, versionsArb, fc.uint8Array({ maxLength: 20 }), ({ message, expected }, sizes, versions, trailer) => {
        const bytes = frame(message, sizes, versions);
        expect(parseClientHello(Buffer.concat([bytes, trailer]))).toEqual({
          kind: 'parsed',
          consumed: bytes.length,
          value: { ...expected, recordBytes: bytes.length },
        });
        expect(parseClientHello(bytes.subarray(0, bytes.length - 1))).toEqual({ kind: 'needMore' });
      }),
      { numRuns: 2000 },
    );
  });

  test('mutating one byte of a valid hello never throws', () => {
    fc.assert(
      fc.property(helloArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), ({ message }, at, delta, cut) => {
        const bytes = Buffer.from(frame(message, [97, 211]));
        const index = at % bytes.length;
        bytes.writeUInt8(((bytes.readUInt8(index) + delta) & 0xff) >>> 0, index);
        expect(isResult(parseClientHello(bytes), bytes.length)).toBe(true);
        const truncated = bytes.subarray(0, cut % (bytes.length + 1));
        expect(isResult(parseClientHello(truncated), truncated.length)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  test('a hello larger than the limit is refused, never left waiting', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 1, max: 2 ** 14 }), (excess, fragment) => {
        const padding = extension(21, Buffer.alloc(MAX_CLIENT_HELLO_BYTES + excess));
        const body = Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(0), vec16(u16(0x1301)), vec8(u8(0)), vec16(padding)]);
        const bytes = frame(handshake(body), [fragment]);
        const result = parseClientHello(bytes);
        expect(result).toEqual({ kind: 'invalid', reason: `ClientHello larger than ${MAX_CLIENT_HELLO_BYTES} bytes` });
      }),
      { numRuns: 200 },
    );
  });
});
