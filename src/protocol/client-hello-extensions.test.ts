import { parseClientHello } from './client-hello';
import { alpnExt, expectInvalid, expectParsed, ext, hello, type HelloSpec, helloBody, sniExt, versionsExt } from './testdata/client-hellos';
import { handshake, record, u16, u8, vec16, vec8 } from './testdata/tls-encoding';

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
      extensions: [ext(0x0a0a, Buffer.alloc(0)), sniExt('grease.example'), alpnExt(['\x3a\x3a', 'h2']), versionsExt([0x7a7a, 0x0304, 0x0303]), ext(0xfafa, Buffer.from([0]))],
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
});

// ---------------------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------------------

describe('parseClientHello refuses', () => {
  const body = (spec: HelloSpec): Buffer => record(handshake(helloBody(spec)));
  const withTail = (spec: HelloSpec, tail: Buffer): Buffer => record(handshake(Buffer.concat([helloBody(spec), tail])));
  const rawExtensions = (block: Buffer): Buffer => {
    const base = helloBody({ extensions: null });
    return record(handshake(Buffer.concat([base, vec16(block)])));
  };

  test.each<[string, Buffer, RegExp]>([
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
