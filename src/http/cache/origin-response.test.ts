import { plainlyUnstorable, storableHeaders } from './origin-response';

describe('the fields a stored response keeps', () => {
  test('no pseudo-headers, no hop-by-hop fields, none the Connection field names', () => {
    const headers = storableHeaders([
      ':status',
      '200',
      'Content-Type',
      'text/plain',
      'Connection',
      'keep-alive, X-Hop',
      'Keep-Alive',
      'timeout=5',
      'X-Hop',
      'a',
      'Transfer-Encoding',
      'chunked',
      'ETag',
      '"v1"',
    ]);
    expect(headers).toEqual({ 'content-type': 'text/plain', etag: '"v1"' });
  });

  test('repeated fields are joined; Set-Cookie stays a list', () => {
    const headers = storableHeaders(['Vary', 'Accept', 'vary', 'Accept-Language', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2']);
    expect(headers).toEqual({ vary: 'Accept, Accept-Language', 'set-cookie': ['a=1', 'b=2'] });
  });
});

describe('responses a shared cache plainly may not keep', () => {
  test.each([
    [['Cache-Control', 'no-store']],
    [['cache-control', 'max-age=60, Private']],
    [['Cache-Control', 'private="x-user"']],
    [['Cache-Control', 'public', 'Set-Cookie', 'a=1']],
    [['Vary', 'Accept, *']],
  ])('%j: judged without a cache policy', (raw) => {
    expect(plainlyUnstorable(raw)).toBe(true);
  });

  test.each([[['Cache-Control', 'max-age=60']], [['Cache-Control', 'no-cache', 'ETag', '"v"']], [['Vary', 'Accept-Encoding']], [['X-Private', 'no-store']], [[]]])(
    '%j: left to the cache policy',
    (raw) => {
      expect(plainlyUnstorable(raw)).toBe(false);
    },
  );
});
