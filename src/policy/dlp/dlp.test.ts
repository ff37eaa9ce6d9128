import { Readable } from 'node:stream';
import fc from 'fast-check';
import { compileDlp, type DlpProblem } from './compile-dlp';
import { BUILTIN_DETECTORS, passesLuhn } from './detectors';
import { checkPattern } from './pattern-safety';
import { createDlpScanner, DlpMatch } from './scanner';
import type { Detector, DlpFinding } from './dlp-types';

const CARD = '4111111111111111';

async function scan(chunks: readonly Buffer[], detectors: readonly Detector[], stopOnFirst = false): Promise<{ findings: DlpFinding[]; output: Buffer; error: Error | null }> {
  const findings: DlpFinding[] = [];
  const scanner = createDlpScanner({ detectors, stopOnFirst, onFinding: (f) => findings.push(f) });
  const out: Buffer[] = [];
  scanner.on('data', (b: Buffer) => out.push(b));
  return new Promise((resolve) => {
    scanner.on('error', (error) => resolve({ findings, output: Buffer.concat(out), error }));
    scanner.on('end', () => resolve({ findings, output: Buffer.concat(out), error: null }));
    Readable.from(chunks, { objectMode: false }).pipe(scanner);
  });
}

describe('built-in detectors', () => {
  const cases: [string, string, boolean][] = [
    ['payment_card', `card=${CARD}&x=1`, true],
    ['payment_card', 'card=4111 1111 1111 1111.', true],
    ['payment_card', 'card=5500-0000-0000-0004', true],
    ['payment_card', 'card=4111111111111112', false], // Luhn fails
    ['payment_card', 'order 12345678901234567890123', false], // too long to be a card
    ['aws_access_key_id', 'key=AKIAIOSFODNN7EXAMPLE;', true],
    ['aws_access_key_id', 'ASIAY34FZKBOKMUTVV7A', true],
    ['aws_access_key_id', 'AKIAIOSFODNN7EXAMPLEXX', false],
    ['github_token', `token ghp_${'a'.repeat(36)}`, true],
    ['github_token', `token ghp_${'a'.repeat(35)}`, false],
    ['google_api_key', `AIza${'B'.repeat(35)}`, true],
    ['slack_token', 'xoxb-1234567890-abcdefghij', true],
    ['private_key', '-----BEGIN RSA PRIVATE KEY-----\nMIIE', true],
    ['private_key', '-----BEGIN PUBLIC KEY-----', false],
  ];
  test.each(cases)('%s in %j: %s', async (name, text, expected) => {
    const detector = BUILTIN_DETECTORS.find((d) => d.name === name)!;
    const { findings } = await scan([Buffer.from(text)], [detector]);
    expect(findings.length > 0).toBe(expected);
  });

  test('Luhn', () => {
    expect(passesLuhn('4111 1111 1111 1111')).toBe(true);
    expect(passesLuhn('79927398713')).toBe(false); // valid Luhn but too short for a card
    expect(passesLuhn('4111111111111121')).toBe(false);
  });
});

describe('scanner', () => {
  test('reports detector and byte offset, never the value, and passes the bytes on unchanged', async () => {
    const body = Buffer.from(`{"note":"é","card":"${CARD}"}`);
    const { findings, output } = await scan([body.subarray(0, 20), body.subarray(20)], BUILTIN_DETECTORS);
    expect(findings).toEqual([{ detector: 'payment_card', offset: body.indexOf(CARD) }]);
    expect(JSON.stringify(findings)).not.toContain(CARD);
    expect(output.equals(body)).toBe(true);
  });

  test('deny mode stops before the matched bytes are passed on', async () => {
    const body = Buffer.from(`${'x'.repeat(5000)}${CARD}${'y'.repeat(5000)}`);
    const chunks = [body.subarray(0, 5008), body.subarray(5008)];
    const { error, output } = await scan(chunks, BUILTIN_DETECTORS, true);
    expect(error).toBeInstanceOf(DlpMatch);
    expect(output.toString('latin1')).not.toContain(CARD);
    expect(output.toString('latin1')).not.toContain(CARD.slice(0, 8));
  });

  test('property: a planted card is found once at its offset, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom('a', ' ', '-', '=', '\n', 'x'), maxLength: 300 }),
        fc.string({ unit: fc.constantFrom('a', ' ', '=', 'z'), maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 30 }),
        async (before, after, sizes) => {
          const body = Buffer.from(`${before}|${CARD}|${after}`);
          const chunks: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < body.length; i++) {
            const n = sizes[i % sizes.length]!;
            chunks.push(body.subarray(at, at + n));
            at += n;
          }
          const { findings, output } = await scan(chunks, BUILTIN_DETECTORS);
          expect(findings).toEqual([{ detector: 'payment_card', offset: before.length + 1 }]);
          expect(output.equals(body)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('property: every built-in detector finds its planted secret across any chunking', async () => {
    const secrets: [string, string][] = [
      ['aws_access_key_id', 'AKIAIOSFODNN7EXAMPLE'],
      ['github_token', `ghp_${'A1b2C3d4E5'.repeat(3)}abcdef`],
      ['google_api_key', `AIza${'Sy-_0123456789'.repeat(2)}abcdefg`],
      ['slack_token', 'xoxb-1234567890-abcdefghij'],
      ['private_key', '-----BEGIN OPENSSH PRIVATE KEY-----'],
      ['payment_card', '5500 0000 0000 0004'],
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...secrets),
        fc.string({ unit: fc.constantFrom('a', ' ', '=', '\n'), maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        async ([name, secret], before, sizes) => {
          const body = Buffer.from(`${before}|${secret}|tail`);
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < body.length; i++) {
            chunks.push(body.subarray(at, at + sizes[i % sizes.length]!));
            at += sizes[i % sizes.length]!;
          }
          const { findings } = await scan(chunks, BUILTIN_DETECTORS);
          expect(findings).toEqual([{ detector: name, offset: before.length + 1 }]);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('property: the tail of a long digit run is not a card, wherever a chunk boundary falls', async () => {
    // 41 nines then a Luhn-valid 16 digits: one 57-digit number, not a card.
    const body = Buffer.from(`${'a'.repeat(300)} ${'9'.repeat(41)}${CARD} ${'b'.repeat(300)}`);
    // The boundary that once made the scanner see the last 16 digits on their own: the held
    // tail started exactly at them.
    const start = body.indexOf(`9${CARD}`) + 1;
    const holdBack = Math.max(...BUILTIN_DETECTORS.map((d) => d.maxLength));
    expect((await scan([body.subarray(0, start + holdBack), body.subarray(start + holdBack)], BUILTIN_DETECTORS)).findings).toEqual([]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), async (sizes) => {
        const chunks: Buffer[] = [];
        for (let at = 0, i = 0; at < body.length; i++) {
          chunks.push(body.subarray(at, at + sizes[i % sizes.length]!));
          at += sizes[i % sizes.length]!;
        }
        expect((await scan(chunks, BUILTIN_DETECTORS)).findings).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  test('memory stays bounded: held bytes never exceed the longest detector', async () => {
    const scanner = createDlpScanner({ detectors: BUILTIN_DETECTORS, stopOnFirst: false, onFinding: () => undefined });
    let passed = 0;
    scanner.on('data', (b: Buffer) => (passed += b.length));
    for (let i = 0; i < 100; i++) scanner.write(Buffer.alloc(10_000, 0x61));
    await new Promise((r) => setImmediate(r));
    expect(1_000_000 - passed).toBeLessThanOrEqual(Math.max(...BUILTIN_DETECTORS.map((d) => d.maxLength)) + 1);
    scanner.end();
  });
});

describe('user patterns', () => {
  test.each([
    ['EMP-[0-9]{6}', 10],
    ['(?<![A-Z])PRJ-[A-Z]{2,4}-[0-9]{1,5}', 15],
    ['secret_[a-f0-9]{32}', 39],
  ])('%s is accepted with max length %d', (source, length) => {
    expect(checkPattern(source)).toEqual({ ok: true, maxLength: length });
  });

  test.each([
    ['a+', /unbounded repetition/],
    ['x.*y', /unbounded repetition/],
    ['(a{1,10}){1,10}', /nested repetition/],
    ['(a|aa){1,20}', /repeated alternation/],
    ['(a)\\1', /backreferences/],
    ['[a-z]{1000,2000}', /at most 1024/],
    ['\\w{0,100}\\w{0,100}\\w{0,100}x', /combine in/],
    ['(unclosed', /not a valid regular expression/],
  ])('%s is refused', (source, reason) => {
    const check = checkPattern(source);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(reason);
  });

  test('compileDlp: default detectors, custom patterns, problems located', () => {
    const problems: DlpProblem[] = [];
    const dlp = compileDlp(
      {
        action: 'deny',
        patterns: [
          { name: 'employee_id', regex: 'EMP-[0-9]{6}' },
          { name: 'bad', regex: '.+' },
        ],
      },
      problems,
    );
    expect(dlp.detectors.map((d) => d.name)).toContain('payment_card');
    expect(dlp.detectors.map((d) => d.name)).toContain('employee_id');
    expect(problems).toEqual([{ path: ['patterns', 1, 'regex'], message: expect.stringMatching(/unbounded/) }]);
  });

  test('a custom pattern split across chunks is found', async () => {
    const dlp = compileDlp({ action: 'log', detectors: [], patterns: [{ name: 'employee_id', regex: 'EMP-[0-9]{6}' }] }, []);
    const { findings } = await scan([Buffer.from('id: EMP-12'), Buffer.from('3456 ok')], dlp.detectors);
    expect(findings).toEqual([{ detector: 'employee_id', offset: 4 }]);
  });
});
