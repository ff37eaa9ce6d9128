import { ConfigError } from '../sources/config-error';
import { compilePolicy, type PolicySourceFile } from './load-policy';

const options = { defaultAction: 'deny' as const, allowedPorts: { tunnel: [443], http: [80] } };

function file(name: string, text: string): PolicySourceFile {
  return { name, displayPath: `policies/${name}`, text };
}

function problems(files: PolicySourceFile[], extra: Partial<Parameters<typeof compilePolicy>[1]> = {}): string {
  try {
    compilePolicy(files, { ...options, ...extra });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('policy loading', () => {
  test('cache: false is kept on the rule; on a deny rule it is an error', () => {
    const policy = compilePolicy([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    cache: false\n  - match: y.com\n    action: inspect\n')], options);
    expect(policy.rules.map((r) => r.cache)).toEqual([false, true]);
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: deny\n    cache: false\n')])).toMatch(/policies\/a\.yaml:\d+: rules\[0\]\.cache: cache only applies/);
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    cache: maybe\n')])).toMatch(/cache: expected true or false/);
  });

  test('allow_encoded_slashes is kept on rules with HTTP rules; elsewhere it is an error', () => {
    const http = '    http:\n      - request: { path: "/admin/**" }\n        action: deny\n';
    const policy = compilePolicy([file('a.yaml', `rules:\n  - match: x.com\n    action: inspect\n    allow_encoded_slashes: true\n${http}  - match: y.com\n    action: inspect\n${http}`)], options);
    expect(policy.rules.map((r) => r.allowEncodedSlashes)).toEqual([true, false]);
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    allow_encoded_slashes: true\n')])).toMatch(
      /policies\/a\.yaml:\d+: rules\[0\]\.allow_encoded_slashes: allow_encoded_slashes only matters for rules with http rules/,
    );
  });

  test('pinning auto-splice: allowed by default, never for required rules, for HTTP rules or DLP only when opted in', () => {
    const rules = [
      '  - name: plain\n    match: plain.com\n    action: inspect',
      '  - name: required\n    match: required.com\n    action: inspect\n    required: true',
      '  - name: http\n    match: http.com\n    action: inspect\n    http:\n      - request: { path: "/admin/**" }\n        action: deny',
      '  - name: dlp\n    match: dlp.com\n    action: inspect\n    dlp: { detectors: [payment_card], action: log }',
      '  - name: opted-in\n    match: opted-in.com\n    action: inspect\n    pinning: { auto_splice_allowed: true }\n    dlp: { detectors: [payment_card], action: deny }',
      '  - name: opted-out\n    match: opted-out.com\n    action: inspect\n    pinning:\n      auto_splice_allowed: false',
    ];
    const policy = compilePolicy([file('a.yaml', `rules:\n${rules.join('\n')}\n`)], options);
    expect(Object.fromEntries(policy.rules.map((r) => [r.id, r.autoSpliceAllowed]))).toEqual({ plain: true, required: false, http: false, dlp: false, 'opted-in': true, 'opted-out': false });
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    required: true\n    pinning: { auto_splice_allowed: true }\n')])).toMatch(
      /:5: rules\[0\]\.pinning\.auto_splice_allowed: a rule cannot be both required/,
    );
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: splice\n    pinning: { auto_splice_allowed: true }\n')])).toMatch(/auto_splice_allowed only applies to inspect rules/);
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    pinning: { auto_splice: true }\n')])).toMatch(
      /rules\[0\]\.pinning\.auto_splice: unknown key; known keys here: auto_splice_allowed/,
    );
  });

  test('a rule with http rules refuses what is not HTTP: inspect_non_http defaults to deny there, and relay or non_tls: splice beside them is an error', () => {
    const http = '    http:\n      - request: { path: "/admin/**" }\n        action: deny\n';
    const policy = compilePolicy([file('a.yaml', `rules:\n  - name: web\n    match: x.com\n    action: inspect\n${http}  - name: mail\n    match: y.com\n    action: inspect\n`)], options);
    expect(Object.fromEntries(policy.rules.map((r) => [r.id, r.inspectNonHttp]))).toEqual({ web: 'deny', mail: 'relay' });
    expect(problems([file('a.yaml', `rules:\n  - match: x.com\n    action: inspect\n    inspect_non_http: relay\n${http}`)])).toMatch(
      /policies\/a\.yaml:\d+: rules\[0\]\.inspect_non_http: inspect_non_http: relay passes decrypted streams that are not HTTP to the origin unseen by this rule's http rules/,
    );
    expect(problems([file('a.yaml', `rules:\n  - match: x.com\n    action: inspect\n    non_tls: splice\n${http}`)])).toMatch(
      /rules\[0\]\.non_tls: non_tls: splice relays tunnels that are neither TLS nor HTTP unseen/,
    );
    // Without http rules both stay the operator's choice.
    expect(compilePolicy([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n    inspect_non_http: relay\n    non_tls: splice\n')], options).rules[0]).toMatchObject({
      inspectNonHttp: 'relay',
      nonTls: 'splice',
    });
  });

  test('the same pattern in two files is an error naming both files', () => {
    const message = problems([file('a.yaml', 'rules:\n  - match: example.com\n    action: splice\n'), file('b.yaml', 'rules:\n  - match: [other.com, EXAMPLE.com.]\n    action: deny\n')]);
    expect(message).toMatch(/policies\/b\.yaml:2: match: pattern "example\.com" is also used by the rule at policies\/a\.yaml:2/);
  });

  test('the same pattern with disjoint ports is allowed; overlapping ports are not', () => {
    expect(() => compilePolicy([file('a.yaml', 'rules:\n  - match: x.com\n    ports: [443]\n    action: splice\n  - match: x.com\n    ports: [8443]\n    action: deny\n')], options)).not.toThrow();
    expect(problems([file('a.yaml', 'rules:\n  - match: x.com\n    ports: [443, 8443]\n    action: splice\n  - match: x.com\n    ports: [8443]\n    action: deny\n')])).toMatch(
      /line 2 of the same file/,
    );
  });

  test('an action the build cannot carry out is refused, never downgraded', () => {
    const message = problems([file('a.yaml', 'rules:\n  - match: x.com\n    action: inspect\n')], { supportedActions: ['deny', 'splice'] });
    expect(message).toMatch(/policies\/a\.yaml:3: rules\[0\]\.action: action "inspect" is not available in this build/);
  });

  test('every bad rule in a file is reported, not just the first', () => {
    const message = problems([
      file(
        'a.yaml',
        'rules:\n  - match: x.com\n    action: allow\n  - match: "a.*.com"\n    action: deny\n  - match: y.com\n    action: splice\n    upstream_insecure: true\n  - match: z.com\n    action: deny\n    portz: [1]\n',
      ),
    ]);
    expect(message.split('\n')).toHaveLength(4);
    expect(message).toMatch(/:3: rules\[0\]\.action: expected one of/);
    expect(message).toMatch(/:4: rules\[1\]\.match: "a\.\*\.com"/);
    expect(message).toMatch(/:8: rules\[2\]\.upstream_insecure: upstream_insecure only applies to inspect rules/);
    expect(message).toMatch(/:11: rules\[3\]\.portz: unknown key; known keys here: name, match, action, ports/);
  });

  test('patterns: CIDR host bits, mapped IPv6, and disguised addresses', () => {
    expect(problems([file('a.yaml', 'rules:\n  - match: 10.0.0.1/8\n    action: deny\n')])).toMatch(/host bits set/);
    const policy = compilePolicy([file('a.yaml', 'rules:\n  - match: ["::ffff:10.0.0.0/104", "0x7f.1"]\n    action: deny\n')], options);
    expect(policy.rules[0]!.patterns.map((p) => p.text)).toEqual(['10.0.0.0/8', '127.0.0.1']);
  });

  test('the version changes with any input that shapes decisions', () => {
    const a = compilePolicy([file('a.yaml', 'rules: []\n')], options);
    const b = compilePolicy([file('a.yaml', 'rules: []\n')], options);
    const c = compilePolicy([file('a.yaml', 'rules: []\n')], { ...options, defaultAction: 'splice' });
    const d = compilePolicy([file('a.yaml', 'rules: []\n# comment\n')], options);
    expect(a.version).toBe(b.version);
    expect(new Set([a.version, c.version, d.version]).size).toBe(3);
  });
});
