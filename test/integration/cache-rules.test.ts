import { startCacheOrigin, type CacheOrigin } from './support/cache-origin';
import { startTestGateway, type TestGateway } from './support/gateway';
import { curl } from './support/run';

describe('HTTP cache and HTTP rules', () => {
  let gw: TestGateway;
  let origin: CacheOrigin;

  beforeAll(async () => {
    origin = await startCacheOrigin();
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: {
        'site.yaml': [
          'rules:',
          '  - match: origin.test',
          '    action: inspect',
          '    http:',
          '      - name: blocked-clients',
          '        request: { headers: { X-Block: true } }',
          '        action: deny',
          '      - name: frame-deny',
          '        action: set_header',
          '        set_headers: { response: { X-Frame-Options: DENY } }',
          '',
        ].join('\n'),
      },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (path: string) => `http://origin.test:${origin.port}${path}`;

  test("response rules apply to a stored reply as to the origin's", async () => {
    const first = await curl(['-x', gw.proxy, url('/max-age?rules=1')]);
    const second = await curl(['-x', gw.proxy, url('/max-age?rules=1')]);
    expect(second.headers['cache-status']).toMatch(/^tollgate; hit/);
    expect(first.headers['x-frame-options']).toBe('DENY');
    expect(second.headers['x-frame-options']).toBe('DENY');
    expect(origin.hits('/max-age?rules=1')).toBe(1);
  });

  test('a request the rules deny is never answered from the cache', async () => {
    await curl(['-x', gw.proxy, url('/max-age?rules=2')]);
    const denied = await curl(['-x', gw.proxy, '-H', 'X-Block: yes', url('/max-age?rules=2')]);
    expect(denied.status).toBe(403);
    expect(denied.headers['cache-status']).toBeUndefined();
    expect(denied.body).not.toMatch(/max-age #/);
    expect(origin.hits('/max-age?rules=2')).toBe(1);
  });
});
