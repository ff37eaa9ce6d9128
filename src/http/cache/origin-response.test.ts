import { storableHeaders } from './origin-response';

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
