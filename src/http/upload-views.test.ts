import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { BUILTIN_DETECTORS } from '../policy/dlp/detectors';
import type { DlpFinding } from '../policy/dlp/dlp-types';
import { DlpMatch } from '../policy/dlp/scanner';
import { createDecodedScanner, type UploadView, UploadUninspectable, uploadView } from './upload-views';

const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const detectors = BUILTIN_DETECTORS.filter((d) => ['aws_access_key_id', 'private_key', 'payment_card'].includes(d.name));

/** Runs `chunks` through a decoded scanner; what came out, what was found, and how it ended. */
async function run(view: UploadView, chunks: readonly Buffer[], deny = true): Promise<{ output: Buffer; findings: DlpFinding[]; error: Error | null; uninspectable: string[] }> {
  if (view.kind !== 'decoded') throw new Error(`not a decoded view: ${view.kind}`);
  const findings: DlpFinding[] = [];
  const uninspectable: string[] = [];
  const stage = createDecodedScanner({ detectors, stopOnFirst: deny, onFinding: (f) => findings.push(f), onUninspectable: (reason) => uninspectable.push(reason), view });
  const out: Buffer[] = [];
  stage.on('data', (b: Buffer) => out.push(b));
  return new Promise((resolve) => {
    stage.on('error', (error) => resolve({ output: Buffer.concat(out), findings, error, uninspectable }));
    stage.on('end', () => resolve({ output: Buffer.concat(out), findings, error: null, uninspectable }));
    Readable.from(chunks, { objectMode: false }).pipe(stage);
  });
}

function split(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

const view = (headers: string[]): UploadView => uploadView(headers);

describe('uploadView', () => {
  test.each([
    [[], { kind: 'raw' }],
    [['Content-Type', 'application/json'], { kind: 'raw' }],
    [['Content-Encoding', 'identity'], { kind: 'raw' }],
    [['Content-Encoding', 'GZIP'], { kind: 'decoded', coding: 'gzip', form: false }],
    [['Content-Encoding', 'x-gzip'], { kind: 'decoded', coding: 'gzip', form: false }],
    [['Content-Encoding', 'br'], { kind: 'decoded', coding: 'br', form: false }],
    [['Content-Type', 'application/x-www-form-urlencoded; charset=utf-8'], { kind: 'decoded', coding: null, form: true }],
    [['Content-Encoding', 'deflate', 'Content-Type', 'application/x-www-form-urlencoded'], { kind: 'decoded', coding: 'deflate', form: true }],
  ])('%j', (headers, expected) => {
    expect(view(headers)).toEqual(expected);
  });

  test.each([
    [['Content-Encoding', 'zstd'], /Content-Encoding "zstd" cannot be decoded/],
    [['Content-Encoding', 'gzip, br'], /more than one Content-Encoding/],
  ])('%j cannot be scanned', (headers, reason) => {
    const result = view(headers);
    expect(result.kind).toBe('unscannable');
    expect(result.kind === 'unscannable' ? result.reason : '').toMatch(reason);
  });
});

describe('scanning the decoded view while passing the bytes on as sent', () => {
  const gzip = view(['Content-Encoding', 'gzip']);
  const form = view(['Content-Type', 'application/x-www-form-urlencoded']);

  test('a gzip upload carrying a key is refused, and what passed on never decodes to the key', async () => {
    const body = Buffer.from(`${'x'.repeat(5000)} key=${AWS_KEY} ${'y'.repeat(5000)}`);
    const compressed = zlib.gzipSync(body);
    const result = await run(gzip, split(compressed, 7));
    expect(result.error).toBeInstanceOf(DlpMatch);
    expect(result.findings).toEqual([{ detector: 'aws_access_key_id', offset: 5005 }]);
    expect(result.output.length).toBeLessThan(compressed.length);
    const passed = zlib.gunzipSync(result.output, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('latin1');
    expect(passed).not.toContain(AWS_KEY.slice(0, 8));
  });

  test('a clean gzip upload passes on byte for byte', async () => {
    const compressed = zlib.gzipSync(Buffer.from('nothing to see here '.repeat(2000)));
    const result = await run(gzip, split(compressed, 100));
    expect(result.error).toBeNull();
    expect(result.output.equals(compressed)).toBe(true);
  });

  test.each([
    ['key=-----BEGIN+RSA+PRIVATE+KEY-----%0AMIIabc', 'private_key'],
    ['card=4111+1111+1111+1111', 'payment_card'],
    ['card=4111%201111%201111%201111', 'payment_card'],
    [`k=%41%4B%49%41${AWS_KEY.slice(4)}`, 'aws_access_key_id'],
  ])('a form body %s is read as the server reads it', async (body, detector) => {
    const result = await run(form, split(Buffer.from(body), 3));
    expect(result.error).toBeInstanceOf(DlpMatch);
    expect(result.findings.map((f) => f.detector)).toEqual([detector]);
  });

  test('log mode: findings are recorded, every byte passes on', async () => {
    const body = Buffer.from(`card=4111+1111+1111+1111&x=${'z'.repeat(3000)}`);
    const result = await run(form, split(body, 5), false);
    expect(result.error).toBeNull();
    expect(result.findings.map((f) => f.detector)).toEqual(['payment_card']);
    expect(result.output.equals(body)).toBe(true);
  });

  test('an empty body with a Content-Encoding passes: there is nothing to inspect', async () => {
    const result = await run(gzip, []);
    expect(result.error).toBeNull();
    expect(result.output.length).toBe(0);
  });

  test('a gzip member followed by zero padding ends, whether the padding comes with it or after', async () => {
    const member = zlib.gzipSync(Buffer.from('hello'));
    const padded = await run(gzip, [Buffer.concat([member, Buffer.alloc(8)])]);
    expect(padded.error).toBeNull();
    expect(padded.output.length).toBe(member.length + 8);
    const later = await run(gzip, [member, Buffer.alloc(4), Buffer.from(AWS_KEY)]);
    expect(later.error).toBeInstanceOf(UploadUninspectable);
  });

  test('Content-Encoding over two lines is one list: identity then gzip is gzip, gzip twice is two codings', () => {
    expect(view(['Content-Encoding', 'identity', 'Content-Encoding', 'gzip'])).toEqual({ kind: 'decoded', coding: 'gzip', form: false });
    expect(view(['Content-Encoding', 'gzip', 'content-encoding', 'gzip']).kind).toBe('unscannable');
  });

  test('a large upload that compresses very well passes: the bomb limit is on large expansions', async () => {
    const json = Buffer.from(JSON.stringify(Array.from({ length: 40_000 }, (_, i) => ({ id: i % 7, ok: true }))));
    const compressed = zlib.gzipSync(json);
    expect(json.length / compressed.length).toBeGreaterThan(100);
    const result = await run(gzip, split(compressed, 4096));
    expect(result.error).toBeNull();
  });

  test('log mode: a coding that does not decode passes on whole, and says it was not inspected', async () => {
    const body = Buffer.from('this is not gzip at all');
    const result = await run(gzip, [body], false);
    expect(result.error).toBeNull();
    expect(result.output.equals(body)).toBe(true);
    expect(result.uninspectable).toEqual([expect.stringMatching(/gzip coding does not decode/)]);
  });

  test('a coding that does not decode is refused in deny mode', async () => {
    const result = await run(gzip, [Buffer.from('this is not gzip at all')]);
    expect(result.error).toBeInstanceOf(UploadUninspectable);
    expect(result.error?.message).toMatch(/gzip coding does not decode/);
    expect(result.output.length).toBe(0);
  });

  test('a decompression bomb is refused before it is decoded in full', async () => {
    // 128 MiB of zeros in about 128 KiB: refused past 64 MiB plus 100 times what was received.
    const bomb = zlib.gzipSync(Buffer.alloc(128 * 1024 * 1024));
    const result = await run(gzip, split(bomb, 16 * 1024));
    expect(result.error).toBeInstanceOf(UploadUninspectable);
    expect(result.error?.message).toMatch(/decodes to more than 100 times its size/);
  });

  test('property: however a gzip upload is chunked, a key in it is found and never passed on whole', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 1, max: 300 }), async (at, size) => {
        const body = Buffer.from(`${'a'.repeat(at)} ${AWS_KEY} ${'b'.repeat(200)}`);
        const compressed = zlib.gzipSync(body);
        const result = await run(gzip, split(compressed, size));
        expect(result.error).toBeInstanceOf(DlpMatch);
        const passed = zlib.gunzipSync(result.output, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('latin1');
        expect(passed).not.toContain(AWS_KEY);
      }),
      { numRuns: 40 },
    );
  });
});
