import { readFileSync } from 'node:fs';
import path from 'node:path';
import { compilePolicy } from './load-policy';

/** The README's policy-writing guide is compiled as written, so it cannot drift from the schema. */
test('the README policy example compiles, with every HTTP rule action and a dlp block', () => {
  const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
  const example = /```yaml\n(description: web access for the finance department\n[\s\S]*?)```/.exec(readme);
  expect(example).not.toBeNull();
  const policy = compilePolicy([{ name: 'example.yaml', displayPath: 'README.md', text: example![1]! }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
  const storage = policy.rules.find((r) => r.id === 'storage')!;
  expect(new Set(storage.http.map((h) => h.action))).toEqual(new Set(['allow', 'deny', 'log', 'strip_header', 'set_header']));
  expect(storage.dlp?.detectors.map((d) => d.name)).toContain('employee_id');
  expect(new Set(policy.rules.map((r) => r.action))).toEqual(new Set(['deny', 'splice', 'inspect']));
});
