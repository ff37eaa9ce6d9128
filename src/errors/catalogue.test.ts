import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CATALOGUE, type ErrorCode } from './gateway-error';

/** docs/errors.md documents every code with the replies refusal.ts derives from it. */
describe('error catalogue and its documentation', () => {
  const doc = readFileSync(path.resolve(__dirname, '../../docs/errors.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const match = /^\| `(TG_ERR_[A-Z_]+)` \| (.+) \|$/.exec(line);
    if (match) rows.set(match[1]!, match[2]!.split(' | '));
  }

  test('every documented code exists and every code is documented', () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(ERROR_CATALOGUE).sort());
  });

  test.each(Object.keys(ERROR_CATALOGUE) as ErrorCode[])('%s: status, reply codes and summary agree', (code) => {
    const spec = ERROR_CATALOGUE[code];
    const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0').toUpperCase()}`;
    expect(rows.get(code)).toEqual([String(spec.httpStatus), hex(spec.socks5Reply), hex(spec.socks4Reply), spec.summary]);
  });
});
