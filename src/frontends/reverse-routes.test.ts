import type { Host } from '../protocol/host';
import { ConfigError } from '../sources/config-error';
import { type ReverseConfig, ReverseRouter } from './reverse-routes';

const name = (n: string): Host => ({ kind: 'name', name: n });

function router(routes: ReverseConfig['routes'], defaultRoute: ReverseConfig['defaultRoute'] = null): ReverseRouter {
  return ReverseRouter.compile({ certificates: [], routes, defaultRoute }, '/etc/tollgate/tollgate.yaml');
}

describe('ReverseRouter', () => {
  const r = router([
    { host: 'app.example', pathPrefix: '/', backend: 'http://10.0.0.5:8080', caFile: null },
    { host: 'app.example', pathPrefix: '/api/', backend: 'https://api.internal:8443', caFile: null },
    { host: 'app.example', pathPrefix: '/api/v2/', backend: 'https://api2.internal', caFile: null },
    { host: '*.apps.example', pathPrefix: '/', backend: 'http://[fd00::6]:8080', caFile: null },
    { host: 'one.apps.example', pathPrefix: '/', backend: 'http://10.0.0.7', caFile: null },
  ]);

  test.each([
    ['app.example', '/', 'app.example/', 'http://10.0.0.5:8080'],
    ['app.example', '/api/x', 'app.example/api/', 'https://api.internal:8443'],
    ['app.example', '/api/v2/x', 'app.example/api/v2/', 'https://api2.internal:443'],
    ['app.example', '/apix', 'app.example/', 'http://10.0.0.5:8080'],
    ['two.apps.example', '/', '*.apps.example/', 'http://[fd00::6]:8080'],
    ['one.apps.example', '/', 'one.apps.example/', 'http://10.0.0.7:80'],
  ])('%s%s -> %s', (host, path, route, backend) => {
    const found = r.route(name(host), path);
    expect(found?.route).toBe(route);
    expect(found?.backend).toBe(backend);
  });

  test('a wildcard covers exactly one more label; unknown hosts get null without a default route', () => {
    expect(r.route(name('a.b.apps.example'), '/')).toBeNull();
    expect(r.route(name('apps.example'), '/')).toBeNull();
    expect(r.route({ kind: 'ipv4', address: '10.0.0.5' }, '/')).toBeNull();
  });

  test('the default route takes what no route serves', () => {
    const withDefault = router([{ host: 'app.example', pathPrefix: '/', backend: 'http://10.0.0.5', caFile: null }], { backend: 'http://10.0.0.9', caFile: null });
    expect(withDefault.route(name('other.example'), '/')?.route).toBe('default_route');
    expect(withDefault.all.map((x) => x.key)).toEqual(['reverse.routes[0]', 'reverse.default_route']);
  });

  test('conflicts are configuration errors naming the key and the fix', () => {
    expect(() =>
      router([
        { host: 'app.example', pathPrefix: '/', backend: 'http://10.0.0.5', caFile: null },
        { host: 'app.example', pathPrefix: '/', backend: 'http://10.0.0.6', caFile: null },
      ]),
    ).toThrow(/reverse\.routes\[1\].*same host and path_prefix as reverse\.routes\[0\]/s);
    expect(() => router([{ host: 'app.example', pathPrefix: '/', backend: 'http://10.0.0.5', caFile: '/ca.pem' }])).toThrow(ConfigError);
    expect(() =>
      router([
        { host: 'a.example', pathPrefix: '/', backend: 'https://api.internal', caFile: '/a.pem' },
        { host: 'b.example', pathPrefix: '/', backend: 'https://api.internal', caFile: null },
      ]),
    ).toThrow(/different ca_file/);
  });
});
