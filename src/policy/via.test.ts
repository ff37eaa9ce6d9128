import type { Principal } from '../identity/principal';
import { ConfigError } from '../sources/config-error';
import { decide, routeFor, viaText } from './decide';
import { compilePolicy, type PolicySourceFile } from './load-policy';
import type { CompiledPolicy } from './types';

/** A rule's `via`, `upstream.via`, and the way out a destination takes (routeFor, Decision.via). */

const parents = new Set(['corp', 'backup']);
const options = { defaultAction: 'deny' as const, allowedPorts: { tunnel: [443], http: [80] }, authConfigured: true, parents };

const file = (text: string): PolicySourceFile => ({ name: 'a.yaml', displayPath: 'policies/a.yaml', text });

function problems(text: string): string {
  try {
    compilePolicy([file(text)], options);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const name = (n: string) => ({ kind: 'name' as const, name: n });

describe('via in policy rules', () => {
  const policy: CompiledPolicy = compilePolicy(
    [
      file(
        [
          'rules:',
          '  - name: bank',
          '    match: bank.example',
          '    action: splice',
          '    via: direct',
          '  - name: saas',
          '    match: .saas.example',
          '    action: inspect',
          '    via: [corp, backup]',
          '  - name: saas-admins',
          '    match: admin.saas.example',
          '    action: inspect',
          '    users: [alice]',
          '  - name: news',
          '    match: news.example',
          '    action: splice',
          '',
        ].join('\n'),
      ),
    ],
    { ...options, defaultVia: ['corp'] },
  );

  test('a rule keeps its via: direct is [], a list keeps its order; no via is null', () => {
    expect(policy.rules.map((r) => [r.id, r.via])).toEqual([
      ['bank', []],
      ['saas', ['corp', 'backup']],
      ['saas-admins', null],
      ['news', null],
    ]);
  });

  test('routeFor: the rule’s via, else upstream.via; rules for some users never choose the way out', () => {
    expect(routeFor(policy, name('bank.example'), 443)).toEqual([]);
    expect(routeFor(policy, name('app.saas.example'), 443)).toEqual(['corp', 'backup']);
    // admin.saas.example is decided by saas-admins for alice, but leaves the way .saas.example does.
    expect(routeFor(policy, name('admin.saas.example'), 443)).toEqual(['corp', 'backup']);
    expect(routeFor(policy, name('news.example'), 443)).toEqual(['corp']);
    expect(routeFor(policy, name('elsewhere.example'), 443)).toEqual(['corp']);
  });

  test('decisions carry the way out of their destination', () => {
    const alice: Principal = { user: 'alice', groups: [] };
    const input = { port: 443, sni: null, frontend: 'explicit-connect' as const, principal: alice };
    const admin = decide({ ...input, target: name('admin.saas.example') }, policy);
    expect(admin.rule?.id).toBe('saas-admins');
    expect(admin.via).toEqual(['corp', 'backup']);
    expect(decide({ ...input, target: name('bank.example') }, policy).via).toEqual([]);
    expect(viaText([])).toBe('direct');
    expect(viaText(['corp', 'backup'])).toBe('corp,backup');
  });

  test('mistakes name the rule, the key and the fix', () => {
    expect(problems('rules:\n  - match: x.example\n    action: splice\n    via: cropo\n')).toMatch(
      /policies\/a\.yaml:4: rules\[0\]\.via: unknown parent proxy "cropo"; use direct or a name defined under upstream\.parents: one of corp, backup/,
    );
    expect(problems('rules:\n  - match: x.example\n    action: deny\n    via: corp\n')).toMatch(/rules\[0\]\.via: via only applies to rules that let traffic through/);
    expect(problems('rules:\n  - match: x.example\n    action: splice\n    users: [alice]\n    via: corp\n')).toMatch(/rules\[0\]\.via: via is chosen per destination: put it on a rule for everyone/);
    expect(problems('rules:\n  - match: x.example\n    action: splice\n    via: [corp, direct]\n')).toMatch(/rules\[0\]\.via\[1\]: direct cannot be part of a failover list/);
    expect(problems('rules:\n  - match: x.example\n    action: splice\n    via: [corp, corp]\n')).toMatch(/rules\[0\]\.via\[1\]: parent "corp" is listed twice/);
    expect(problems('rules:\n  - match: x.example\n    action: splice\n    via: 3\n')).toMatch(/via: expected direct, a parent name, or a list of parent names/);
  });
});
