import { normaliseHost, type Host } from '../protocol/host';
import { parseHostAndOptionalPort } from '../protocol/target';
import { checkRequestAuthority, decide } from './decide';
import { compilePolicy } from './load-policy';
import type { Action, DecisionCode, FrontendKind } from './types';

function host(text: string): Host {
  const result = normaliseHost(text);
  if (!result.ok) throw new Error(result.reason);
  return result.host;
}

const policy = compilePolicy(
  [
    {
      name: 'inspect.yaml',
      displayPath: 'policies/inspect.yaml',
      text: `
rules:
  - name: corp-inspect
    match: [".corp.example", "*.saas.example"]
    action: inspect
  - match: api.saas.example
    action: splice
    reason: API clients pin certificates
  - name: inspect-net
    match: 192.0.2.0/24
    action: inspect
`,
    },
    {
      name: 'exceptions.yaml',
      displayPath: 'policies/exceptions.yaml',
      text: `
rules:
  - match: ".bank.example"
    action: splice
    reason: banking is never decrypted
  - match: "*.bank.example"
    action: deny
    reason: only the bank's apex is used
  - match: "login.bank.example"
    action: splice
  - match: "bank.example"
    ports: [8443]
    action: deny
  - match: ["203.0.113.0/24"]
    action: splice
  - match: "203.0.113.7"
    action: deny
  - match: "2001:db8::/32"
    action: splice
  - match: "files.example"
    ports: [8080, 443]
    action: splice
  - match: "bücher.example"
    action: deny
  - match: "open.example"
    action: splice
`,
    },
  ],
  { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } },
);

interface Case {
  readonly name: string;
  readonly target: string;
  readonly port?: number;
  readonly sni?: string;
  readonly frontend?: FrontendKind;
  readonly action: Action;
  readonly code: DecisionCode;
  readonly rule: string | null;
}

const cases: Case[] = [
  { name: 'exact name beats a suffix', target: 'api.saas.example', action: 'splice', code: 'rule', rule: 'policies/inspect.yaml:6' },
  { name: '*.suffix matches a subdomain', target: 'www.saas.example', action: 'inspect', code: 'rule', rule: 'corp-inspect' },
  { name: '*.suffix does not match the apex', target: 'saas.example', action: 'deny', code: 'default', rule: null },
  { name: '.suffix matches the apex', target: 'corp.example', action: 'inspect', code: 'rule', rule: 'corp-inspect' },
  { name: '.suffix matches deep subdomains', target: 'a.b.c.corp.example', action: 'inspect', code: 'rule', rule: 'corp-inspect' },
  { name: '*.x beats .x for a subdomain', target: 'www.bank.example', action: 'deny', code: 'rule', rule: 'policies/exceptions.yaml:6' },
  { name: 'exact beats *.x', target: 'login.bank.example', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:9' },
  { name: '.x covers its apex on the default port', target: 'bank.example', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:3' },
  { name: 'a port-specific rule beats the general one', target: 'bank.example', port: 8443, action: 'deny', code: 'rule', rule: 'policies/exceptions.yaml:11' },
  { name: 'names are case-insensitive', target: 'WWW.SAAS.Example', action: 'inspect', code: 'rule', rule: 'corp-inspect' },
  { name: 'a trailing dot is ignored', target: 'corp.example.', action: 'inspect', code: 'rule', rule: 'corp-inspect' },
  { name: 'IDN matches its punycode', target: 'xn--bcher-kva.example', action: 'deny', code: 'rule', rule: 'policies/exceptions.yaml:23' },
  { name: 'unknown names get the default', target: 'elsewhere.example', action: 'deny', code: 'default', rule: null },
  { name: 'a host address beats its CIDR', target: '203.0.113.7', action: 'deny', code: 'rule', rule: 'policies/exceptions.yaml:16' },
  { name: 'CIDR match', target: '203.0.113.8', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:14' },
  { name: 'an address in disguise is still an address', target: '3405803784', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:14' },
  { name: 'IPv6 CIDR', target: '[2001:db8::1]', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:18' },
  { name: 'an IP literal never matches name rules', target: '198.51.100.1', action: 'deny', code: 'default', rule: null },
  { name: 'tunnel port not allowed', target: 'open.example', port: 22, action: 'deny', code: 'port', rule: 'policies/exceptions.yaml:25' },
  { name: 'rule ports allow a port outside the global list', target: 'files.example', port: 8080, action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:20' },
  { name: 'plain HTTP uses the http port list', target: 'open.example', port: 80, frontend: 'explicit-http', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:25' },
  { name: 'plain HTTP on 443 is not in the http list', target: 'open.example', port: 443, frontend: 'explicit-http', action: 'deny', code: 'port', rule: 'policies/exceptions.yaml:25' },
  { name: 'SNI equal to target changes nothing', target: 'open.example', sni: 'open.example', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:25' },
  { name: 'SNI naming a denied host denies', target: 'open.example', sni: 'elsewhere.example', action: 'deny', code: 'sni', rule: null },
  // An inspected flow's origin is verified for the SNI: a different target name would let that
  // name pick the rules while the SNI picks the origin.
  { name: 'SNI naming an inspected host under a spliced target: one name per inspected flow', target: 'open.example', sni: 'www.saas.example', action: 'deny', code: 'fronting', rule: 'corp-inspect' },
  { name: 'SNI naming a spliced host under an inspected target: one name per inspected flow', target: 'www.saas.example', sni: 'open.example', action: 'deny', code: 'fronting', rule: 'corp-inspect' },
  { name: 'SNI naming another inspected host: one name per inspected flow', target: 'www.saas.example', sni: 'a.corp.example', action: 'deny', code: 'fronting', rule: 'corp-inspect' },
  {
    name: 'an SNI naming a spliced host under a spliced target keeps the target decision',
    target: 'open.example',
    sni: 'login.bank.example',
    action: 'splice',
    code: 'rule',
    rule: 'policies/exceptions.yaml:25',
  },
  { name: 'an address target with a spliced SNI keeps the address decision', target: '203.0.113.8', sni: 'login.bank.example', action: 'splice', code: 'rule', rule: 'policies/exceptions.yaml:14' },
  { name: 'an address target and an inspected SNI: the name governs the inspected flow', target: '203.0.113.8', sni: 'www.saas.example', action: 'inspect', code: 'sni', rule: 'corp-inspect' },
  { name: 'an inspected address without SNI: the address rule', target: '192.0.2.5', action: 'inspect', code: 'rule', rule: 'inspect-net' },
  { name: "an inspected address with an inspected SNI: the name's rule governs", target: '192.0.2.5', sni: 'www.saas.example', action: 'inspect', code: 'sni', rule: 'corp-inspect' },
  { name: 'a denied address stays denied whatever the SNI', target: '203.0.113.7', sni: 'www.saas.example', action: 'deny', code: 'rule', rule: 'policies/exceptions.yaml:16' },
  { name: 'a denied target stays denied whatever the SNI', target: 'elsewhere.example', sni: 'open.example', action: 'deny', code: 'default', rule: null },
];

describe('decide', () => {
  test.each(cases)('$name', (c) => {
    const decision = decide({ target: host(c.target), port: c.port ?? 443, sni: c.sni === undefined ? null : host(c.sni), frontend: c.frontend ?? 'explicit-connect', principal: null }, policy);
    expect({ action: decision.action, code: decision.code, rule: decision.rule?.id ?? null }).toEqual({ action: c.action, code: c.code, rule: c.rule });
    expect(decision.reason.length).toBeGreaterThan(0);
    expect(decision.policyVersion).toBe(policy.version);
  });

  test('the reason of a rule is carried into the decision', () => {
    const decision = decide({ target: host('bank.example'), port: 443, sni: null, frontend: 'socks', principal: null }, policy);
    expect(decision.reason).toBe('banking is never decrypted');
    expect(decision.pattern).toBe('.bank.example');
  });

  test('pinning auto-splice turns inspect into splice only where the rule allows it', () => {
    const pinned = compilePolicy(
      [
        {
          name: 'p.yaml',
          displayPath: 'policies/p.yaml',
          text: [
            'rules:',
            '  - { name: plain, match: plain.example, action: inspect }',
            '  - { name: required, match: required.example, action: inspect, required: true }',
            '  - { name: http, match: http.example, action: inspect, http: [{ request: { method: [DELETE] }, action: deny }] }',
            '  - { name: dlp, match: dlp.example, action: inspect, dlp: { detectors: [github_token], action: deny } }',
            '  - { name: opted-in, match: opted-in.example, action: inspect, pinning: { auto_splice_allowed: true }, dlp: { detectors: [github_token], action: deny } }',
            '  - { name: spliced, match: spliced.example, action: splice }',
            '',
          ].join('\n'),
        },
      ],
      { defaultAction: 'inspect', allowedPorts: { tunnel: [443], http: [80] } },
    );
    const names = ['plain.example', 'required.example', 'http.example', 'dlp.example', 'opted-in.example', 'spliced.example', 'unlisted.example'];
    const autoSpliced = new Set(names);
    const outcome = (name: string, sni: string | null = null) => {
      const d = decide({ target: host(name), port: 443, sni: sni === null ? null : host(sni), frontend: 'explicit-connect', principal: null, autoSpliced }, pinned);
      return `${d.action}/${d.code}`;
    };
    expect(Object.fromEntries(names.map((n) => [n, outcome(n)]))).toEqual({
      'plain.example': 'splice/pinning',
      'required.example': 'inspect/rule',
      'http.example': 'inspect/rule',
      'dlp.example': 'inspect/rule',
      'opted-in.example': 'splice/pinning',
      'spliced.example': 'splice/rule',
      'unlisted.example': 'splice/pinning',
    });
    // An SNI naming a protected name inside a tunnel to an auto-spliced one is decided by its own
    // rule (inspect, the stricter), and then refused: an inspected flow names one destination.
    expect(outcome('plain.example', 'dlp.example')).toBe('deny/fronting');
  });

  test('a default allow still applies the port list', () => {
    const open = compilePolicy([], { defaultAction: 'splice', allowedPorts: { tunnel: [443], http: [80] } });
    expect(decide({ target: host('x.example'), port: 443, sni: null, frontend: 'explicit-connect', principal: null }, open).action).toBe('splice');
    expect(decide({ target: host('x.example'), port: 25, sni: null, frontend: 'explicit-connect', principal: null }, open).code).toBe('port');
  });

  describe('requests inside an inspected connection name its origin (checkRequestAuthority)', () => {
    const inspected = decide({ target: host('www.saas.example'), port: 443, sni: host('www.saas.example'), frontend: 'explicit-connect', principal: null }, policy);
    const origin = { host: host('www.saas.example'), port: 443 };
    const check = (...written: string[]) =>
      checkRequestAuthority(
        inspected,
        origin,
        written.map((w) => {
          const parsed = parseHostAndOptionalPort(w, 443);
          if (!parsed.ok) throw new Error(parsed.reason);
          return parsed.target;
        }),
        written,
      );

    test.each(['www.saas.example', 'WWW.saas.example.', 'www.saas.example:443'])('%s agrees', (authority) => {
      expect(check(authority)).toBe(inspected);
    });

    test.each(['api.saas.example', 'www.saas.example:8443', '203.0.113.8'])('%s is refused as fronting', (authority) => {
      const decision = check(authority);
      expect(decision).toMatchObject({ action: 'deny', code: 'fronting', rule: inspected.rule });
      expect(decision.reason).toContain(authority);
    });

    test('every authority must agree (Host and :authority)', () => {
      expect(check('www.saas.example', 'api.saas.example').code).toBe('fronting');
      expect(check()).toBe(inspected);
    });
  });
});
