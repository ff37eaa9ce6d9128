import { ConfigError } from './config-error';
import { compilePolicy } from '../policy/load-policy';
import { parseConfig } from '../config/load-config';

/** Messages a person can act on, for mistakes people make in policy files too. */
function policyProblems(text: string): string {
  try {
    compilePolicy([{ name: 'p.yaml', displayPath: 'policies/p.yaml', text }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '';
}

describe('validation messages say what to write', () => {
  test('a single port where a list is expected', () => {
    expect(policyProblems('rules:\n  - match: example.com\n    action: splice\n    ports: 443\n')).toBe(
      'policies/p.yaml:4: rules[0].ports: expected a list: write [443] for one item, or [a, b] for several',
    );
  });

  test('a single pattern is fine for match (one or a list), a bare group name is not for groups', () => {
    expect(policyProblems('rules:\n  - match: example.com\n    action: splice\n')).toBe('');
    expect(policyProblems('rules:\n  - match: example.com\n    action: splice\n    groups: eng\n')).toMatch(/rules\[0\]\.groups: expected a list: write \[eng\] for one item/);
  });

  test('durations need a unit; 0 needs none', () => {
    expect(parseConfig('limits:\n  shutdown_grace: 0\n', '/x/t.yaml').limits.shutdownGraceMs).toBe(0);
    expect(parseConfig('limits:\n  peek_timeout: 1.5s\n', '/x/t.yaml').limits.peekTimeoutMs).toBe(1500);
    expect(() => parseConfig('limits:\n  peek_timeout: 1500\n', '/x/t.yaml')).toThrow(/limits\.peek_timeout: 1500 has no unit: write 1500s for seconds or 1500ms for milliseconds/);
  });
});
