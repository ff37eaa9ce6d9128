import { MAX_PROXY_V2_PAYLOAD_BYTES, PROXY_V2_SIGNATURE, encodeProxyV2, parseProxyV2 } from './proxy-v2';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

const SIG = '0d0a0d0a000d0a515549540a';

describe('PROXY v2 transcripts', () => {
  test('TCP4: 192.0.2.10:51234 -> 10.0.0.5:3128, then pipelined HTTP bytes', () => {
    const header = hex(`${SIG} 21 11 000c c000020a 0a000005 c822 0c38`);
    const input = Buffer.concat([header, Buffer.from('GET http://x/ HTTP/1.1\r\n')]);
    expect(parseProxyV2(input)).toEqual({
      kind: 'parsed',
      consumed: 28,
      value: { command: 'proxy', family: 'tcp4', source: { address: '192.0.2.10', port: 51234 }, destination: { address: '10.0.0.5', port: 3128 } },
    });
  });

  test('TCP6 with a TLV (PP2_TYPE_UNIQUE_ID) that is skipped', () => {
    const tlv = hex('05 0004 deadbeef');
    const header = hex(`${SIG} 21 21 ${(36 + tlv.length).toString(16).padStart(4, '0')}
      20010db8000000000000000000000001 20010db8000000000000000000000002 1f90 0c38`);
    const result = parseProxyV2(Buffer.concat([header, tlv]));
    expect(result).toEqual({
      kind: 'parsed',
      consumed: 16 + 36 + 7,
      value: { command: 'proxy', family: 'tcp6', source: { address: '2001:db8::1', port: 8080 }, destination: { address: '2001:db8::2', port: 3128 } },
    });
  });

  test('TCP6 carrying an IPv4-mapped address reports the IPv4 form', () => {
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp6', source: { address: '::ffff:c000:20a', port: 1 }, destination: { address: '::1', port: 2 } });
    const result = parseProxyV2(header);
    expect(result.kind === 'parsed' && result.value.command === 'proxy' && result.value.family === 'tcp6' ? result.value.source.address : null).toBe('192.0.2.10');
  });

  test('LOCAL (balancer health check) ignores the address block', () => {
    expect(parseProxyV2(hex(`${SIG} 20 00 0000`))).toEqual({ kind: 'parsed', consumed: 16, value: { command: 'local' } });
    expect(parseProxyV2(hex(`${SIG} 20 11 000c 000000000000000000000000`))).toEqual({ kind: 'parsed', consumed: 28, value: { command: 'local' } });
  });

  test('UNIX and UDP are accepted as "unspec" (no usable client address)', () => {
    expect(parseProxyV2(Buffer.concat([hex(`${SIG} 21 31 00d8`), Buffer.alloc(216)]))).toMatchObject({ kind: 'parsed', consumed: 232, value: { family: 'unspec' } });
    expect(parseProxyV2(Buffer.concat([hex(`${SIG} 21 12 000c`), Buffer.alloc(12)]))).toMatchObject({ kind: 'parsed', value: { family: 'unspec' } });
  });

  test('needMore for every strict prefix of a valid header', () => {
    const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: '1.2.3.4', port: 5 }, destination: { address: '6.7.8.9', port: 10 } });
    for (let n = 0; n < header.length; n++) expect(parseProxyV2(header.subarray(0, n))).toEqual({ kind: 'needMore' });
    expect(parseProxyV2(header)).toMatchObject({ kind: 'parsed', consumed: header.length });
  });

  test.each([
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n'), /no PROXY protocol v2 signature/],
    ['a TLS ClientHello', hex('160301020001'), /no PROXY protocol v2 signature/],
    ['PROXY v1 text', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /v1/],
    ['a wrong first byte, refused at once', hex('0d0b'), /signature/],
    ['version 1 in the binary header', hex(`${SIG} 11 11 000c 000000000000000000000000`), /version 1/],
    ['an unknown command', hex(`${SIG} 22 11 000c 000000000000000000000000`), /command 2/],
    ['an unknown family', hex(`${SIG} 21 41 0000`), /family/],
    ['an address block longer than the length', hex(`${SIG} 21 11 0004 00000000`), /too short/],
    ['a TLV running past the end', hex(`${SIG} 21 11 000f 000000000000000000000000 01 0009 00`), /TLV/],
    ['a truncated TLV header', hex(`${SIG} 21 11 000e 000000000000000000000000 0100`), /truncated TLV/],
    ['an oversized length', hex(`${SIG} 21 11 ${(MAX_PROXY_V2_PAYLOAD_BYTES + 1).toString(16).padStart(4, '0')}`), /exceeds/],
  ])('invalid: %s', (_name, input, reason) => {
    const result = parseProxyV2(input);
    expect(result.kind).toBe('invalid');
    if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
  });

  test('encode/parse round trip', () => {
    const header = { command: 'proxy' as const, family: 'tcp6' as const, source: { address: 'fe80::1:2', port: 65535 }, destination: { address: '2001:db8:0:1::', port: 1 } };
    expect(parseProxyV2(encodeProxyV2(header))).toMatchObject({ kind: 'parsed', value: header });
    expect(PROXY_V2_SIGNATURE.toString('latin1')).toBe('\r\n\r\n\0\r\nQUIT\n');
  });
});
