import { asksOnlyIfCached, requestDirective } from './directives';

describe('request Cache-Control directives', () => {
  test.each([
    [['Cache-Control', 'only-if-cached'], true],
    [['cache-control', 'max-age=0, Only-If-Cached'], true],
    [['Cache-Control', 'max-age=0', 'Cache-Control', 'only-if-cached'], true],
    [['Cache-Control', 'no-cache'], false],
    [['Cache-Control', 'x-only-if-cached'], false],
    [['Pragma', 'only-if-cached'], false],
    [[], false],
  ])('%j -> only-if-cached %s', (raw, expected) => {
    expect(asksOnlyIfCached(raw)).toBe(expected);
  });

  test('a directive with a value counts by its name', () => {
    expect(requestDirective({ 'cache-control': 'no-store="x", max-age=5' }, 'no-store')).toBe(true);
    expect(requestDirective({ 'cache-control': ['max-age=5', 'no-cache'] }, 'no-cache')).toBe(true);
    expect(requestDirective({}, 'no-store')).toBe(false);
  });
});
