import { certificateNameMatches } from './server-certificates';

describe('certificateNameMatches (RFC 6125: a wildcard is the whole left-most label)', () => {
  test.each([
    ['app.example', 'app.example', true],
    ['app.example', 'www.app.example', false],
    ['*.apps.example', 'one.apps.example', true],
    ['*.apps.example', 'apps.example', false],
    ['*.apps.example', 'a.b.apps.example', false],
    ['*.apps.example', '.apps.example', false],
  ])('%s covers %s: %s', (pattern, name, expected) => {
    expect(certificateNameMatches(pattern, name)).toBe(expected);
  });
});
