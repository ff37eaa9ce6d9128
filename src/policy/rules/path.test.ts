import fc from 'fast-check';
import { canonicalPath } from './path';

const strict = { allowEncodedSlashes: false };
const lenient = { allowEncodedSlashes: true };

describe('canonical request paths (what HTTP rules match)', () => {
  test.each([
    ['/admin/secret', '/admin/secret'],
    ['/public/../admin/secret', '/admin/secret'],
    ['/public/%2e%2e/admin/secret', '/admin/secret'],
    ['/public/.%2E/admin/secret', '/admin/secret'],
    ['/%61dmin/secret', '/admin/secret'],
    ['/%41dmin/secret', '/Admin/secret'],
    ['//admin/secret', '/admin/secret'],
    ['/admin//secret', '/admin/secret'],
    ['/./admin/secret', '/admin/secret'],
    ['/admin;jsessionid=1/secret', '/admin/secret'],
    ['/../../admin', '/admin'],
    ['/a/b/', '/a/b/'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/a/..', '/'],
    ['/', '/'],
    ['*', '*'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a%20b', '/a%20b'],
    ['/a%3fb', '/a%3Fb'],
    ['/%7euser', '/~user'],
  ])('%s is matched as %s', (raw, canonical) => {
    expect(canonicalPath(raw, strict)).toEqual({ ok: true, path: canonical });
  });

  test.each([
    ['/admin%2Fsecret', /slash/],
    ['/admin%2fsecret', /slash/],
    ['/admin%5Csecret', /backslash/],
    ['/admin\\secret', /backslash/],
    ['/admin%00', /NUL/],
    ['/adm%in', /malformed/],
    ['/admin%2', /malformed/],
    ['/admin%u0073', /malformed/],
    ['/%c0%ae%c0%ae/admin', /UTF-8/],
    ['/admin#frag', /fragment/],
    ['admin', /start with/],
    ['/public/..;/admin/secret', /dot segment with parameters/],
    ['/internal/..;x/api/', /dot segment with parameters/],
    ['/internal/%2e%2e;/api/', /dot segment with parameters/],
    ['/.;/admin', /dot segment with parameters/],
  ])('%s is refused', (raw, reason) => {
    const result = canonicalPath(raw, strict);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  test('a rule that opts in keeps encoded slashes as data, never as separators', () => {
    expect(canonicalPath('/files/a%2Fb', lenient)).toEqual({ ok: true, path: '/files/a%2Fb' });
    expect(canonicalPath('/files/a%2f..%2fb', lenient)).toEqual({ ok: true, path: '/files/a%2F..%2Fb' });
    expect(canonicalPath('/files\\x', lenient)).toEqual({ ok: true, path: '/files%5Cx' });
    expect(canonicalPath('/files/%00', lenient).ok).toBe(false);
  });

  // Segments as a client might spell them: plain names, dots, empties, parameters and
  // percent-encodings of unreserved characters.
  const letter = fc.constantFrom('a', 'b', 'd', 'm', 'i', 'n', 'Z', '0', '-', '_', '~');
  const spelled = letter.chain((c) => fc.constantFrom(c, `%${c.charCodeAt(0).toString(16)}`, `%${c.charCodeAt(0).toString(16).toUpperCase()}`));
  const name = fc.array(spelled, { minLength: 1, maxLength: 4 }).map((parts) => parts.join(''));
  const segment = fc.oneof(
    name,
    fc.constantFrom('.', '..', '', '%2e', '%2E%2e'),
    fc.tuple(name, name).map(([a, b]) => `${a};${b}`),
  );
  const rawPath = fc.array(segment, { maxLength: 8 }).map((segments) => `/${segments.join('/')}`);

  /** An origin's view: decode unreserved, drop parameters and empty segments, resolve dots. */
  function resolvedByOrigin(raw: string): string {
    const out: string[] = [];
    for (const seg of raw.split('/').slice(1)) {
      const name = decodeURIComponent(seg.split(';')[0]!);
      if (name === '' || name === '.') continue;
      if (name === '..') out.pop();
      else out.push(name);
    }
    return `/${out.join('/')}`;
  }

  test('property: the rules see the resource an origin resolves the path to', () => {
    fc.assert(
      fc.property(rawPath, (raw) => {
        const result = canonicalPath(raw, strict);
        expect(result.ok).toBe(true);
        if (result.ok) expect(result.path.replace(/\/$/, '') || '/').toBe(resolvedByOrigin(raw));
      }),
      { numRuns: 2000 },
    );
  });

  test('property: canonical paths are stable (canonicalising twice changes nothing)', () => {
    fc.assert(
      fc.property(rawPath, (raw) => {
        const once = canonicalPath(raw, strict);
        if (!once.ok) return;
        expect(canonicalPath(once.path, strict)).toEqual(once);
      }),
      { numRuns: 2000 },
    );
  });
});
