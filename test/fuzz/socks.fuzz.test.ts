import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { formatIpv6 } from '../../src/protocol/socks-fields';
import type { SocksParseResult, SocksTarget } from '../../src/protocol/socks-wire';
import { type Socks4Request, parseSocks4Request } from '../../src/protocol/socks4-codec';
import { type Socks5Credentials, type Socks5Greeting, type Socks5Request, encodeSocks5Reply, parseSocks5Greeting, parseSocks5Request, parseSocks5UserPass } from '../../src/protocol/socks5-codec';

const RUNS = 300;

function bytes(maxLength: number): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength }).map((array) => Buffer.from(array));
}

// ---------------------------------------------------------------------------------------------
// Models of valid messages and their bytes per the RFCs.

const port = fc.integer({ min: 1, max: 0xffff });
// RFC 1928 section 4: UDP ASSOCIATE may carry port 0; only CONNECT and BIND must name a port.
const portFor = (command: number) => fc.integer({ min: command === 0x01 || command === 0x02 ? 1 : 0, max: 0xffff });
const nameChar = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code));
const domainName = (maxLength: number) => fc.string({ unit: nameChar, minLength: 1, maxLength });
const dottedQuad = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));

/** 16 bytes biased towards zero groups, so compression and its tie rules get exercised. */
const ipv6Bytes = fc.oneof(
  fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }).map((groups) => {
    const buffer = Buffer.alloc(16);
    for (const [index, group] of groups.entries()) buffer.writeUInt16BE(group, index * 2);
    return buffer;
  }),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((v4) => Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), v4])),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((array) => Buffer.from(array)),
);

/** What RFC 5952 says the text of these bytes is, per ipaddr.js, with IPv4-mapped addresses in section 5 form. */
function canonicalIpv6(address: Buffer): string {
  const parsed = ipaddr.fromByteArray(Array.from(address)) as ipaddr.IPv6;
  return parsed.isIPv4MappedAddress() ? `::ffff:${parsed.toIPv4Address().toString()}` : parsed.toRFC5952String();
}

type Socks5Address = { readonly kind: 'ipv4'; readonly bytes: Buffer } | { readonly kind: 'ipv6'; readonly bytes: Buffer } | { readonly kind: 'domain'; readonly name: string };

const socks5Address: fc.Arbitrary<Socks5Address> = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((array) => ({ kind: 'ipv4' as const, bytes: Buffer.from(array) })),
  ipv6Bytes.map((buffer) => ({ kind: 'ipv6' as const, bytes: buffer })),
  domainName(255).map((name) => ({ kind: 'domain' as const, name })),
);

const socks5Command = fc.oneof(fc.constantFrom(0x01, 0x02, 0x03), fc.integer({ min: 0, max: 0xff }));

function encodeSocks5Address(address: Socks5Address): Buffer {
  if (address.kind === 'ipv4') return Buffer.concat([Buffer.from([0x01]), address.bytes]);
  if (address.kind === 'ipv6') return Buffer.concat([Buffer.from([0x04]), address.bytes]);
  return Buffer.concat([Buffer.from([0x03, address.name.length]), Buffer.from(address.name, 'latin1')]);
}

function encodePort(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value, 0);
  return buffer;
}

function targetOf(address: Socks5Address, targetPort: number): SocksTarget {
  if (address.kind === 'ipv4') return { kind: 'ipv4', address: Array.from(address.bytes).join('.'), port: targetPort };
  if (address.kind === 'ipv6') return { kind: 'ipv6', address: canonicalIpv6(address.bytes), port: targetPort };
  return { kind: 'domain', name: address.name, port: targetPort };
}

function commandName5(code: number): Socks5Request['command'] {
  return ({ 1: 'connect', 2: 'bind', 3: 'udp-associate' } as Record<number, Socks5Request['command']>)[code] ?? code;
}

function commandName4(code: number): Socks4Request['command'] {
  return ({ 1: 'connect', 2: 'bind' } as Record<number, Socks4Request['command']>)[code] ?? code;
}

/** Text that is valid UTF-8 once encoded, at most 255 bytes, and free of C0 controls and DEL unless allowed. */
function utf8Text(allowControls: boolean): fc.Arbitrary<string> {
  return fc
    .string({ unit: 'binary', maxLength: 80 })
    .filter((text) => (allowControls || !/[\u0000-\u001f\u007f]/.test(text)) && Buffer.from(text).toString() === text && Buffer.byteLength(text) <= 255);
}

interface Example<T> {
  readonly message: Buffer;
  readonly value: T;
}

const socks5RequestExample: fc.Arbitrary<Example<Socks5Request>> = socks5Command.chain((command) =>
  fc.tuple(socks5Address, portFor(command)).map(([address, targetPort]) => ({
    message: Buffer.concat([Buffer.from([0x05, command, 0x00]), encodeSocks5Address(address), encodePort(targetPort)]),
    value: { command: commandName5(command), target: targetOf(address, targetPort) },
  })),
);

const socks4Destination = fc.oneof(
  fc
    .uint8Array({ minLength: 4, maxLength: 4 })
    .filter((ip) => ip[0] !== 0 || ip[1] !== 0 || ip[2] !== 0)
    .map((ip) => ({ kind: 'ipv4' as const, ip: Buffer.from(ip) })),
  fc.tuple(fc.integer({ min: 1, max: 255 }), domainName(255)).map(([marker, name]) => ({ kind: 'domain' as const, marker, name })),
);

const socks4RequestExample: fc.Arbitrary<Example<Socks4Request>> = fc.oneof(fc.constantFrom(0x01, 0x02), fc.integer({ min: 0, max: 0xff })).chain((command) =>
  fc.tuple(socks4Destination, portFor(command), utf8Text(false)).map(([destination, targetPort, userId]) => {
    const ip = destination.kind === 'ipv4' ? destination.ip : Buffer.from([0, 0, 0, destination.marker]);
    const domain = destination.kind === 'domain' ? Buffer.concat([Buffer.from(destination.name, 'latin1'), Buffer.from([0])]) : Buffer.alloc(0);
    const target: SocksTarget =
      destination.kind === 'ipv4' ? { kind: 'ipv4', address: Array.from(destination.ip).join('.'), port: targetPort } : { kind: 'domain', name: destination.name, port: targetPort };
    return {
      message: Buffer.concat([Buffer.from([0x04, command]), encodePort(targetPort), ip, Buffer.from(userId), Buffer.from([0]), domain]),
      value: { command: commandName4(command), target, userId, isSocks4a: destination.kind === 'domain' },
    };
  }),
);

const greetingExample: fc.Arbitrary<Example<Socks5Greeting>> = fc
  .array(fc.integer({ min: 0, max: 0xff }), { minLength: 1, maxLength: 255 })
  .map((methods) => ({ message: Buffer.from([0x05, methods.length, ...methods]), value: { methods } }));

const userPassExample: fc.Arbitrary<Example<Socks5Credentials>> = fc.tuple(utf8Text(false), utf8Text(true)).map(([username, password]) => ({
  message: Buffer.concat([Buffer.from([0x01, Buffer.byteLength(username)]), Buffer.from(username), Buffer.from([Buffer.byteLength(password)]), Buffer.from(password)]),
  value: { username, password },
}));

// ---------------------------------------------------------------------------------------------
// Any bytes at all: arbitrary, behind the right version byte, or a valid message with one byte
// changed and more appended, which reaches the checks deep inside a message.

type Parser = (input: Buffer) => SocksParseResult<unknown>;

/** Each parser, with the longest message it can ever be waiting for (8 + 256 + 256 for SOCKS4 with default caps). */
const PARSERS: ReadonlyArray<{
  readonly name: string;
  readonly parse: Parser;
  readonly version: number;
  readonly valid: fc.Arbitrary<Example<unknown>>;
  readonly maxMessageBytes: number;
}> = [
  { name: 'parseSocks4Request', parse: (input) => parseSocks4Request(input), version: 0x04, valid: socks4RequestExample, maxMessageBytes: 8 + 256 + 256 },
  { name: 'parseSocks5Greeting', parse: parseSocks5Greeting, version: 0x05, valid: greetingExample, maxMessageBytes: 2 + 255 },
  { name: 'parseSocks5UserPass', parse: parseSocks5UserPass, version: 0x01, valid: userPassExample, maxMessageBytes: 3 + 255 + 255 },
  { name: 'parseSocks5Request', parse: parseSocks5Request, version: 0x05, valid: socks5RequestExample, maxMessageBytes: 4 + 1 + 255 + 2 },
];

function mutated(valid: fc.Arbitrary<Example<unknown>>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.nat(), fc.nat(0xff), bytes(32)).map(([{ message }, position, byte, tail]) => {
    const copy = Buffer.from(message);
    copy[position % copy.length] = byte;
    return Buffer.concat([copy, tail]);
  });
}

function inputFor(version: number, valid: fc.Arbitrary<Example<unknown>>, maxLength: number): fc.Arbitrary<Buffer> {
  return fc.oneof(
    bytes(maxLength),
    bytes(maxLength - 1).map((rest) => Buffer.concat([Buffer.from([version]), rest])),
    mutated(valid),
  );
}

function expectWellFormed(result: SocksParseResult<unknown>, input: Buffer): void {
  switch (result.kind) {
    case 'parsed':
      expect(result.consumed).toBeGreaterThan(0);
      expect(result.consumed).toBeLessThanOrEqual(input.length);
      break;
    case 'needMore':
      break;
    case 'invalid':
      expect(typeof result.reason).toBe('string');
      expect(['malformed', 'address-type', 'port-zero']).toContain(result.code);
      break;
    default:
      throw new Error(`unexpected result ${JSON.stringify(result)}`);
  }
}

describe.each(PARSERS)('$name on any bytes', ({ parse, version, valid, maxMessageBytes }) => {
  it('never throws and returns a well-formed result', () => {
    fc.assert(
      fc.property(inputFor(version, valid, 1024), (input) => {
        expectWellFormed(parse(input), input);
      }),
      { numRuns: RUNS },
    );
  });

  it('decides from a prefix what it decides from the whole: more bytes never change a parse or a refusal', () => {
    fc.assert(
      fc.property(inputFor(version, valid, 600), fc.nat(), (input, cut) => {
        const early = parse(input.subarray(0, cut % (input.length + 1)));
        if (early.kind !== 'needMore') expect(parse(input)).toEqual(early);
      }),
      { numRuns: RUNS },
    );
  });

  it('never waits for more than one message can hold', () => {
    fc.assert(
      fc.property(inputFor(version, valid, 600), (input) => {
        const padded = Buffer.concat([input, Buffer.alloc(Math.max(0, maxMessageBytes - input.length), 0x61)]);
        expect(parse(padded).kind).not.toBe('needMore');
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips

/** A valid message parses to its model; every strict prefix waits; any suffix is left alone. */
function expectRoundTrip<T>(parse: (input: Buffer) => SocksParseResult<T>, { message, value }: Example<T>, suffix: Buffer): void {
  expect(parse(message)).toEqual({ kind: 'parsed', value, consumed: message.length });
  for (let length = 0; length < message.length; length += 1) {
    const result = parse(message.subarray(0, length));
    if (result.kind !== 'needMore') throw new Error(`prefix of ${length} of ${message.toString('hex')} gave ${JSON.stringify(result)}`);
  }
  expect(parse(Buffer.concat([message, suffix]))).toEqual({ kind: 'parsed', value, consumed: message.length });
}

describe('round trips', () => {
  const suffix = bytes(64);

  it('SOCKS5 requests, every address type and command', () => {
    fc.assert(
      fc.property(socks5RequestExample, suffix, (example, extra) => expectRoundTrip(parseSocks5Request, example, extra)),
      { numRuns: RUNS },
    );
  });

  it('SOCKS4 and SOCKS4a requests', () => {
    fc.assert(
      fc.property(socks4RequestExample, suffix, (example, extra) => expectRoundTrip((input) => parseSocks4Request(input), example, extra)),
      { numRuns: RUNS },
    );
  });

  it('SOCKS5 greetings', () => {
    fc.assert(
      fc.property(greetingExample, suffix, (example, extra) => expectRoundTrip(parseSocks5Greeting, example, extra)),
      { numRuns: RUNS },
    );
  });

  it('username/password requests', () => {
    fc.assert(
      fc.property(userPassExample, suffix, (example, extra) => expectRoundTrip(parseSocks5UserPass, example, extra)),
      { numRuns: RUNS },
    );
  });

  it('IPv6 text is RFC 5952 canonical', () => {
    fc.assert(
      fc.property(ipv6Bytes, (address) => {
        const text = formatIpv6(address);
        expect(text).toBe(canonicalIpv6(address));
        expect(Buffer.from(ipaddr.IPv6.parse(text).toByteArray())).toEqual(address);
      }),
      { numRuns: 1000 },
    );
  });

  it('SOCKS5 replies read back as requests with the bound address', () => {
    const bound = fc.oneof(
      dottedQuad.map((address) => ({ kind: 'ipv4' as const, address })),
      ipv6Bytes.map((raw) => ({ kind: 'ipv6' as const, address: ipaddr.fromByteArray(Array.from(raw)).toString() })),
    );
    fc.assert(
      fc.property(bound, port, (address, boundPort) => {
        // A reply has the request's layout with REP in place of CMD: REP 0x01 reads as CMD connect.
        const reply = encodeSocks5Reply(0x01, { ...address, port: boundPort });
        const result = parseSocks5Request(reply);
        expect(result).toMatchObject({ kind: 'parsed', consumed: reply.length, value: { command: 'connect', target: { kind: address.kind, port: boundPort } } });
        if (result.kind === 'parsed' && result.value.target.kind !== 'domain') {
          expect(ipaddr.parse(result.value.target.address).toByteArray()).toEqual(ipaddr.parse(address.address).toByteArray());
        }
      }),
      { numRuns: RUNS },
    );
  });
});
