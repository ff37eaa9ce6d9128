import { retainedRequest } from './request-view';

describe('what a stored entry keeps of the request', () => {
  const request = {
    url: '/a',
    method: 'GET',
    headers: { host: 'x.test', cookie: 'session=SECRET', authorization: 'Bearer SECRET', 'accept-language': 'en', 'cache-control': 'max-age=0', 'user-agent': 'curl' },
  };

  test('no Cookie or Authorization values unless the response varies on them', () => {
    const kept = retainedRequest(request, ['accept-language']);
    expect(kept.headers).toEqual({ host: 'x.test', 'cache-control': 'max-age=0', 'accept-language': 'en', authorization: 'present' });
    expect(JSON.stringify(kept)).not.toMatch(/SECRET/);
  });

  test('a response that varies on Cookie keeps it, since matching needs it', () => {
    expect(retainedRequest(request, ['cookie']).headers['cookie']).toBe('session=SECRET');
  });
});
