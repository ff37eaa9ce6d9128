import fc from 'fast-check';
import { encodeSocks5DatagramHeader, parseSocks5Datagram } from './socks5-udp';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('parseSocks5Datagram (RFC 1928 section 7)', () => {
  it('parses an IPv4 destination and keeps DATA as given', () => {
    const result = parseSocks5Datagram(hex('0000 00 01 7f000001 0035 deadbeef'));
    expect(result).toEqual({ kind: 'parsed', value: { frag: 0, target: { kind: 'ipv4', address: '127.0.0.1', port: 53 }, payload: hex('deadbeef') } });
  });

  it('parses a domain name and an IPv6 destination', () => {
    const name = parseSocks5Datagram(Buffer.concat([hex('0000 00 03 0b'), Buffer.from('example.com'), hex('0035 01')]));
    expect(name).toEqual({ kind: 'parsed', value: { frag: 0, target: { kind: 'domain', name: 'example.com', port: 53 }, payload: hex('01') } });
    const v6 = parseSocks5Datagram(hex('0000 00 04 00000000000000000000000000000001 0035'));
    expect(v6).toEqual({ kind: 'parsed', value: { frag: 0, target: { kind: 'ipv6', address: '::1', port: 53 }, payload: Buffer.alloc(0) } });
  });

  it('reports FRAG so fragments can be counted and dropped', () => {
    const result = parseSocks5Datagram(hex('0000 01 01 7f000001 0035 00'));
    expect(result.kind === 'parsed' && result.value.frag).toBe(1);
  });

  it.each([
    ['too short', '0000 00', /shorter than a SOCKS5 UDP header/],
    ['reserved bytes set', '0001 00 01 7f000001 0035', /reserved bytes/],
    ['unknown ATYP', '0000 00 05 7f000001 0035', /address type 5/],
    ['address cut short', '0000 00 01 7f00', /inside its destination address/],
    ['port cut short', '0000 00 01 7f000001 00', /inside its destination port/],
    ['port 0', '0000 00 01 7f000001 0000', /port is 0/],
    ['empty name', '0000 00 03 00 0035', /empty domain name/],
    ['name with a space', '0000 00 03 03 612062 0035', /domain name contains byte/],
  ])('refuses %s', (_name, bytes, reason) => {
    const result = parseSocks5Datagram(hex(bytes));
    expect(result.kind).toBe('invalid');
    expect(result.kind === 'invalid' && result.reason).toMatch(reason);
  });
});

describe('encodeSocks5DatagramHeader', () => {
  it('writes RSV, FRAG 0, ATYP, address and port', () => {
    expect(encodeSocks5DatagramHeader(4, '127.0.0.1', 53)).toEqual(hex('0000 00 01 7f000001 0035'));
    expect(encodeSocks5DatagramHeader(6, '::1', 5353)).toEqual(hex('0000 00 04 00000000000000000000000000000001 14e9'));
  });

  it('round-trips through the parser', () => {
    const header = encodeSocks5DatagramHeader(4, '10.1.2.3', 65535)!;
    const parsed = parseSocks5Datagram(Buffer.concat([header, hex('aa')]));
    expect(parsed).toEqual({ kind: 'parsed', value: { frag: 0, target: { kind: 'ipv4', address: '10.1.2.3', port: 65535 }, payload: hex('aa') } });
  });

  it('sends nothing for an address that is not of its family', () => {
    expect(encodeSocks5DatagramHeader(4, '::1', 53)).toBeNull();
    expect(encodeSocks5DatagramHeader(6, 'not-an-address', 53)).toBeNull();
  });
});

describe('parseSocks5Datagram on any bytes', () => {
  it('never throws, and a parsed datagram re-encodes to the bytes it came from (addresses)', () => {
    fc.assert(
      // Mostly SOCKS-shaped (RSV 0000, a FRAG, a known or unknown ATYP), sometimes anything at all.
      fc.property(
        fc.oneof(
          fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom(1, 3, 4, 5), fc.uint8Array({ maxLength: 40 })).map(([frag, atyp, rest]) => Buffer.from([0, 0, frag, atyp, ...rest])),
          fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
        ),
        (input) => {
          const result = parseSocks5Datagram(input);
          if (result.kind !== 'parsed' || result.value.target.kind === 'domain') return;
          const { target, frag, payload } = result.value;
          const header = encodeSocks5DatagramHeader(target.kind === 'ipv4' ? 4 : 6, target.address, target.port)!;
          header[2] = frag;
          expect(Buffer.concat([header, payload])).toEqual(input);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
