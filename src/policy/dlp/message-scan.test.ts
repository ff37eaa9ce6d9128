import { BUILTIN_DETECTORS } from './detectors';
import { scanMessage } from './message-scan';

describe('scanMessage', () => {
  const detectors = BUILTIN_DETECTORS;

  test('finds a detector match and its byte offset', () => {
    const findings = scanMessage(detectors, Buffer.from('key=AKIAIOSFODNN7EXAMPLE;'), 16);
    expect(findings).toEqual([{ detector: 'aws_access_key_id', offset: 4 }]);
  });

  test('a Luhn-invalid card number is not a finding; a valid one is', () => {
    expect(scanMessage(detectors, Buffer.from('card 4111 1111 1111 1112'), 16)).toEqual([]);
    expect(scanMessage(detectors, Buffer.from('card 4111 1111 1111 1111'), 16)).toEqual([{ detector: 'payment_card', offset: 5 }]);
  });

  test('stops at the limit', () => {
    const text = Buffer.from('AKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLF AKIAIOSFODNN7EXAMPLG');
    expect(scanMessage(detectors, text, 1)).toHaveLength(1);
    expect(scanMessage(detectors, text, 16)).toHaveLength(3);
    expect(scanMessage(detectors, text, 0)).toEqual([]);
  });

  test('offsets count bytes, not characters, in non-ASCII text', () => {
    const findings = scanMessage(detectors, Buffer.from('é AKIAIOSFODNN7EXAMPLE'), 16);
    expect(findings).toEqual([{ detector: 'aws_access_key_id', offset: 3 }]);
  });
});
