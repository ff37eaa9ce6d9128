import { readFileSync } from 'node:fs';
import path from 'node:path';
import { compilePolicy } from '../policy/load-policy';

/** The README's "What a tunnel may carry" example compiles as written, with the keys it shows. */
test('the README tunnel example compiles, with non_tls and inspect_non_http', () => {
  const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
  const example = /```yaml\n(rules:\n {2}- name: mail\n[\s\S]*?)```/.exec(readme);
  expect(example).not.toBeNull();
  const policy = compilePolicy([{ name: 'tunnels.yaml', displayPath: 'README.md', text: example![1]! }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
  const byId = new Map(policy.rules.map((r) => [r.id, r]));
  expect(byId.get('mail')).toMatchObject({ action: 'inspect', nonTls: 'deny', inspectNonHttp: 'relay' });
  expect(byId.get('bastion')).toMatchObject({ action: 'splice', nonTls: 'splice' });
  expect(byId.get('partner-api')).toMatchObject({ inspectNonHttp: 'deny' });
});

test('non_tls on a deny rule and inspect_non_http on a splice rule are refused with file, line and fix', () => {
  const text = 'rules:\n  - match: a.example\n    action: deny\n    non_tls: splice\n  - match: b.example\n    action: splice\n    inspect_non_http: relay\n';
  expect(() => compilePolicy([{ name: 'p.yaml', displayPath: 'policies/p.yaml', text }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } })).toThrow(
    /policies\/p\.yaml:4[\s\S]*non_tls only applies[\s\S]*policies\/p\.yaml:7[\s\S]*inspect_non_http only applies to inspect rules/,
  );
});
