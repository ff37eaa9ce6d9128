import fc from 'fast-check';
import { MAX_PROXY_V2_PAYLOAD_BYTES, PROXY_V2_SIGNATURE, encodeProxyV2, parseProxyV2 } from '../../src/protocol/proxy-v2';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const port = fc.integer({ min: 0, max: 65535 });

describe('PROXY v2 parser under arbitrary input', () => {
  test('never throws; parsed headers are bounded and consume no more than the input', () => {
    const withSignature = fc.uint8Array({ maxLength: 2000 }).map((rest) => Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from(rest)]));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          withSignature,
        ),
        (input) => {
          const result = parseProxyV2(input);
          if (result.kind === 'parsed') {
            expect(result.consumed).toBeLessThanOrEqual(input.length);
            expect(result.consumed).toBeLessThanOrEqual(16 + MAX_PROXY_V2_PAYLOAD_BYTES);
          }
          if (result.kind === 'needMore') expect(input.length).toBeLessThan(16 + MAX_PROXY_V2_PAYLOAD_BYTES);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('TCP4 headers round-trip and parse the same at every split point of trailing data', () => {
    fc.assert(
      fc.property(ipv4, ipv4, port, port, fc.uint8Array({ maxLength: 64 }), (src, dst, sp, dp, tail) => {
        const header = encodeProxyV2({ command: 'proxy', family: 'tcp4', source: { address: src, port: sp }, destination: { address: dst, port: dp } });
        const result = parseProxyV2(Buffer.concat([header, Buffer.from(tail)]));
        expect(result).toEqual({ kind: 'parsed', consumed: header.length, value: { command: 'proxy', family: 'tcp4', source: { address: src, port: sp }, destination: { address: dst, port: dp } } });
      }),
      { numRuns: 500 },
    );
  });

  test('mutating one byte of a valid header never yields a parse that reads past the input', () => {
    const base = encodeProxyV2({ command: 'proxy', family: 'tcp6', source: { address: '2001:db8::1', port: 1 }, destination: { address: '2001:db8::2', port: 2 } }, Buffer.from([1, 0, 2, 0x68, 0x32]));
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.nat(255), (index, value) => {
        const mutated = Buffer.from(base);
        mutated[index] = value;
        const result = parseProxyV2(mutated);
        if (result.kind === 'parsed') expect(result.consumed).toBeLessThanOrEqual(mutated.length);
      }),
      { numRuns: 2000 },
    );
  });
});
