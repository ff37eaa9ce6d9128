import { forwardRequestHeaders, forwardResponseHeaders, withoutHopByHop } from './headers';

describe('forwardRequestHeaders', () => {
  const options = { host: 'origin.example', httpVersion: '1.1', via: 'tollgate', forwardedFor: null };

  test('with withoutHopByHop first: hop-by-hop fields, the fields Connection lists, and proxy credentials are removed', () => {
    const out = forwardRequestHeaders(
      withoutHopByHop([
        'Host',
        'elsewhere',
        'Connection',
        'keep-alive, X-Secret',
        'X-Secret',
        's',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Connection',
        'keep-alive',
        'TE',
        'trailers',
        'Trailer',
        'X',
        'Upgrade',
        'h2c',
        'Proxy-Authorization',
        'Basic abc',
        'Transfer-Encoding',
        'chunked',
        'Expect',
        '100-continue',
        'Accept',
        '*/*',
        'Set-Thing',
        'a',
        'Set-Thing',
        'b',
      ]),
      options,
    );
    expect(out).toEqual(['Host', 'origin.example', 'Accept', '*/*', 'Set-Thing', 'a', 'Set-Thing', 'b', 'Via', '1.1 tollgate']);
  });

  test('appends to an existing Via and X-Forwarded-For', () => {
    const out = forwardRequestHeaders(['Via', '1.0 edge', 'X-Forwarded-For', '10.0.0.1'], { ...options, httpVersion: '1.0', forwardedFor: '192.0.2.1' });
    expect(out).toEqual(['Host', 'origin.example', 'Via', '1.0 edge, 1.0 tollgate', 'X-Forwarded-For', '10.0.0.1, 192.0.2.1']);
  });

  test('a hop-by-hop field an edit added is still never sent', () => {
    expect(forwardRequestHeaders(['Accept', '*/*', 'Keep-Alive', 'timeout=1', 'Transfer-Encoding', 'chunked'], options)).toEqual(['Host', 'origin.example', 'Accept', '*/*', 'Via', '1.1 tollgate']);
  });

  test('keeps end-to-end credentials for the origin', () => {
    const out = forwardRequestHeaders(['Authorization', 'Bearer t', 'Cookie', 'a=1'], options);
    expect(out).toContain('Authorization');
    expect(out).toContain('Cookie');
  });
});

describe('forwardResponseHeaders', () => {
  test('with withoutHopByHop first: hop-by-hop fields go, Via is added, repeated Set-Cookie stays separate', () => {
    const out = forwardResponseHeaders(
      withoutHopByHop(['Connection', 'close, X-Internal', 'X-Internal', '1', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'Proxy-Authenticate', 'Basic']),
      '1.1',
      'tollgate',
    );
    expect(out).toEqual(['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Via', '1.1 tollgate']);
  });
});

describe('withoutHopByHop', () => {
  test('drops the hop-by-hop fields and those Connection names, keeps the rest in order', () => {
    const raw = ['Host', 'a.test', 'Connection', 'keep-alive, X-Named', 'Keep-Alive', 'timeout=5', 'X-Named', 'hop', 'TE', 'trailers', 'Accept', '*/*', 'x-named', 'again'];
    expect(withoutHopByHop(raw)).toEqual(['Host', 'a.test', 'Accept', '*/*']);
  });

  test('fields added after it cannot be named away by the Connection header it removed', () => {
    const stripped = withoutHopByHop(['Connection', 'X-Tenant', 'X-Tenant', 'evil']);
    const out = forwardRequestHeaders([...stripped, 'X-Tenant', 'acme'], { host: 'a.test', httpVersion: '1.1', via: 'tollgate', forwardedFor: null });
    expect(out).toEqual(['Host', 'a.test', 'X-Tenant', 'acme', 'Via', '1.1 tollgate']);
  });
});
