import type { SocksParseResult } from '../socks-wire';

/** Builders, assertions and recorded client bytes shared by the SOCKS codec tests. */

export type Parser<T> = (input: Buffer) => SocksParseResult<T>;

export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

export function ascii(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

export function expectParsed<T>(result: SocksParseResult<T>, value: T, consumed: number): void {
  expect(result).toEqual({ kind: 'parsed', value, consumed });
}

export function expectInvalid<T>(result: SocksParseResult<T>, code: string, reason: RegExp): void {
  expect(result).toMatchObject({ kind: 'invalid', code });
  if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
}

/** The framing every message must have: needMore for each strict prefix, exact `consumed` with pipelined bytes after it. */
export function expectExactFraming<T>(parse: Parser<T>, message: Buffer): void {
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
export const CURL = {
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
