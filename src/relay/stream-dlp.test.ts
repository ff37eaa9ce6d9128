import { BUILTIN_DETECTORS } from '../policy/dlp/detectors';
import type { DlpFinding } from '../policy/dlp/dlp-types';
import { StreamDlpMatch, createStreamScanner } from './stream-dlp';

const AWS = BUILTIN_DETECTORS.filter((d) => d.name === 'aws_access_key_id');
const KEY = 'AKIAIOSFODNN7EXAMPLE';

async function feed(chunks: string[], cut: boolean): Promise<{ out: string; findings: DlpFinding[]; error: Error | null }> {
  const findings: DlpFinding[] = [];
  const scanner = createStreamScanner({ detectors: AWS, cut, onFinding: (f) => findings.push(f) });
  let out = '';
  scanner.on('data', (b: Buffer) => (out += b.toString('latin1')));
  const error = await new Promise<Error | null>((resolve) => {
    scanner.once('error', resolve);
    scanner.once('end', () => resolve(null));
    for (const c of chunks) scanner.write(Buffer.from(c, 'latin1'));
    scanner.end();
  });
  return { out, findings, error };
}

describe('the stream DLP scanner', () => {
  test('passes every chunk on at once (nothing held back), reporting a match', async () => {
    const r = await feed(['a1 APPEND ', `${KEY}\r\n`, 'a2 LOGOUT\r\n'], false);
    expect(r.out).toBe(`a1 APPEND ${KEY}\r\na2 LOGOUT\r\n`);
    expect(r.findings).toEqual([{ detector: 'aws_access_key_id', offset: 10 }]);
    expect(r.error).toBeNull();
  });

  test('finds a key split across two reads, once', async () => {
    const r = await feed(['x ', KEY.slice(0, 9), `${KEY.slice(9)} y`, ' more bytes after'], false);
    expect(r.findings).toEqual([{ detector: 'aws_access_key_id', offset: 2 }]);
  });

  test('cut mode: the chunk completing the match is not passed on and the stream fails', async () => {
    const r = await feed(['hello ', KEY.slice(0, 5), `${KEY.slice(5)}\r\n`, 'never'], true);
    expect(r.out).toBe(`hello ${KEY.slice(0, 5)}`);
    expect(r.error).toBeInstanceOf(StreamDlpMatch);
    expect(r.findings).toHaveLength(1);
  });

  test('no match, no finding', async () => {
    const r = await feed(['AKIA short ', 'nothing here'], true);
    expect(r.findings).toEqual([]);
    expect(r.error).toBeNull();
  });
});
