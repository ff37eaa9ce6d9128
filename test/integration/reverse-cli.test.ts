import path from 'node:path';
import { checkJson, runCheck } from '../../src/cli/check';
import { explain, explanationJson, printExplanation } from '../../src/cli/explain';
import { writeSetup } from './support/cli';
import { issue } from './support/pki';

/** `tollgate check` and `tollgate explain --frontend reverse` on the files a reverse proxy reads. */
describe('check and explain for the reverse-proxy listener', () => {
  const leaf = issue({ commonName: 'app.example', dnsNames: ['app.example', '*.apps.example'] });
  const dir = writeSetup({
    'tollgate.yaml': [
      'listen:\n  reverse: 127.0.0.1:0',
      'policies: policies',
      'reverse:',
      '  certificates:\n    - { cert: server.pem, key: server.key }',
      '  routes:',
      '    - { host: app.example, backend: "http://10.0.0.5:8080" }',
      '    - { host: app.example, path_prefix: /api/, backend: "https://api.internal:8443", ca_file: internal-ca.pem }',
      '    - { host: "*.apps.example", backend: "http://10.0.0.6:8080" }',
      '    - { host: admin.example, backend: "http://10.0.0.7:8080" }',
    ].join('\n'),
    'server.pem': leaf.certPem,
    'server.key': leaf.keyPem,
    'internal-ca.pem': leaf.certPem,
    'policies/apps.yaml': 'rules:\n  - name: apps\n    match: [app.example, .apps.example]\n    action: inspect\n  - name: no-admin\n    match: admin.example\n    action: deny\n',
  });
  const config = path.join(dir, 'tollgate.yaml');
  const ask = (destination: string) => ({ destination, user: null, frontend: 'reverse', method: null, headers: [] });

  test('check lists each route with its backend, policy decision and certificate coverage', () => {
    const lines: string[] = [];
    runCheck(config, (l) => lines.push(l));
    const text = lines.join('\n');
    expect(text).toContain('app.example/api/ -> https://api.internal:8443');
    expect(text).toContain('app.example/ -> http://10.0.0.5:8080; policy: inspect (apps); certificate covered');
    expect(text).toContain('admin.example/ -> http://10.0.0.7:8080; policy: deny (no-admin); certificate NOT covered by reverse.certificates');
    const json = checkJson(config).reverse as { routes: { route: string; action: string }[] };
    expect(json.routes.map((r) => [r.route, r.action])).toEqual([
      ['app.example/', 'inspect'],
      ['app.example/api/', 'inspect'],
      ['*.apps.example/', 'inspect'],
      ['admin.example/', 'deny'],
    ]);
  });

  test('explain names the route a URL takes (longest prefix), as text and JSON', () => {
    const e = explain(config, ask('https://app.example/api/v1/users'));
    const lines: string[] = [];
    printExplanation(e, (l) => lines.push(l));
    expect(lines[1]).toMatch(/^route: +app\.example\/api\/ -> https:\/\/api\.internal:8443 \(verified with .*internal-ca\.pem\)$/);
    expect(lines.join('\n')).toContain('reverse-proxy listener (https)');
    expect(explanationJson(e)).toMatchObject({ frontend: 'reverse', reverse: { route: 'app.example/api/', backend: 'https://api.internal:8443' }, result: 'inspect' });
    expect(explanationJson(explain(config, ask('https://x.apps.example/')))).toMatchObject({ reverse: { route: '*.apps.example/' } });
  });

  test('explain: an unknown host gets 421 and the result is deny', () => {
    const e = explain(config, ask('https://elsewhere.example/'));
    expect(explanationJson(e)).toMatchObject({ reverse: { route: null, status: 421 }, result: 'deny' });
    const lines: string[] = [];
    printExplanation(e, (l) => lines.push(l));
    expect(lines[1]).toContain('421 Misdirected Request');
  });

  test('check fails naming the file and key when a certificate does not match its key', () => {
    const other = issue({ commonName: 'other.example', dnsNames: ['other.example'] });
    const broken = writeSetup({
      'tollgate.yaml': 'listen:\n  reverse: 127.0.0.1:0\npolicies: policies\nreverse:\n  certificates:\n    - { cert: server.pem, key: other.key }\n',
      'server.pem': leaf.certPem,
      'other.key': other.keyPem,
      'policies/p.yaml': 'rules: []\n',
    });
    expect(() => runCheck(path.join(broken, 'tollgate.yaml'), () => undefined)).toThrow(/other\.key.*reverse\.certificates\[0\]\.key.*does not belong to the certificate/s);
  });
});
