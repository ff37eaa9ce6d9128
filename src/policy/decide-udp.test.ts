import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../sources/config-error';
import { normaliseHost, type Host } from '../protocol/host';
import { decide } from './decide';
import { compilePolicy } from './load-policy';

/** SOCKS5 UDP datagrams (`socks-udp`) and `socks_bind`: their port list and rule key. */

function host(text: string): Host {
  const result = normaliseHost(text);
  if (!result.ok) throw new Error(result.reason);
  return result.host;
}

const POLICY = `
rules:
  - name: resolvers
    match: [".dns.example", 192.0.2.53]
    action: splice
  - name: voip
    match: voip.example
    action: inspect
    ports: [5060]
    socks_bind: true
  - name: blocked
    match: blocked.example
    action: deny
`;

const policy = compilePolicy([{ name: 'p.yaml', displayPath: 'policies/p.yaml', text: POLICY }], {
  defaultAction: 'deny',
  allowedPorts: { tunnel: [443], http: [80], udp: [53] },
});

const udp = (name: string, port: number) => decide({ target: host(name), port, sni: null, frontend: 'socks-udp', principal: null }, policy);

describe('decide() for SOCKS5 UDP datagrams', () => {
  test.each([
    ['a rule on a port in allowed_ports.udp', 'ns1.dns.example', 53, 'splice', 'rule', 'resolvers'],
    ['an address rule', '192.0.2.53', 53, 'splice', 'rule', 'resolvers'],
    ['a port only allowed_ports.tunnel lists', 'ns1.dns.example', 443, 'deny', 'port', 'resolvers'],
    ["a port the rule's ports list", 'voip.example', 5060, 'inspect', 'rule', 'voip'],
    ['a deny rule', 'blocked.example', 53, 'deny', 'rule', 'blocked'],
    ['no rule: default_action', 'elsewhere.example', 53, 'deny', 'default', null],
  ])('%s', (_name, name, port, action, code, rule) => {
    const decision = udp(name, port);
    expect([decision.action, decision.code, decision.rule?.id ?? null]).toEqual([action, code, rule]);
  });

  test('a TCP tunnel does not get the UDP list, nor UDP the tunnel list', () => {
    expect(decide({ target: host('ns1.dns.example'), port: 53, sni: null, frontend: 'socks', principal: null }, policy).action).toBe('deny');
    expect(decide({ target: host('ns1.dns.example'), port: 443, sni: null, frontend: 'socks', principal: null }, policy).action).toBe('splice');
  });

  test('without allowed_ports.udp in the options no UDP port is allowed unless a rule lists it', () => {
    const noUdp = compilePolicy([{ name: 'p.yaml', displayPath: 'policies/p.yaml', text: POLICY }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
    expect(decide({ target: host('ns1.dns.example'), port: 53, sni: null, frontend: 'socks-udp', principal: null }, noUdp).code).toBe('port');
  });
});

describe('socks_bind', () => {
  test('is false unless a rule says true', () => {
    expect(policy.rules.map((r) => [r.id, r.socksBind])).toEqual([
      ['resolvers', false],
      ['voip', true],
      ['blocked', false],
    ]);
  });

  test('on a deny rule, or not a boolean, is a load error naming file, line and key', () => {
    const load = (text: string) => () => compilePolicy([{ name: 'b.yaml', displayPath: 'policies/b.yaml', text }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
    expect(load('rules:\n  - match: a.example\n    action: deny\n    socks_bind: true\n')).toThrow(ConfigError);
    expect(load('rules:\n  - match: a.example\n    action: deny\n    socks_bind: true\n')).toThrow(/policies\/b\.yaml:4.*socks_bind.*deny rule/s);
    expect(load('rules:\n  - match: a.example\n    action: splice\n    socks_bind: yes please\n')).toThrow(/socks_bind.*expected true or false/s);
  });
});

describe("the README's SOCKS examples", () => {
  const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

  test('the BIND rule compiles with socks_bind on', () => {
    const example = /```yaml\n(rules:\n {2}- name: legacy-ftp\n[\s\S]*?)```/.exec(readme);
    expect(example).not.toBeNull();
    const compiled = compilePolicy([{ name: 'ftp.yaml', displayPath: 'README.md', text: example![1]! }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } });
    expect(compiled.rules.map((r) => [r.id, r.socksBind])).toEqual([['legacy-ftp', true]]);
  });

  test('the UDP policy example compiles and relays DNS to its resolvers', () => {
    const example = /# policies\/dns\.yaml\n(rules:\n[\s\S]*?)```/.exec(readme);
    expect(example).not.toBeNull();
    const compiled = compilePolicy([{ name: 'dns.yaml', displayPath: 'README.md', text: example![1]! }], { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80], udp: [53] } });
    const datagram = (name: string, port: number) => decide({ target: host(name), port, sni: null, frontend: 'socks-udp', principal: null }, compiled).action;
    expect([datagram('ns1.dns.corp.example', 53), datagram('sip.example.net', 5060), datagram('sip.example.net', 53), datagram('10.0.0.53', 123)]).toEqual(['splice', 'splice', 'deny', 'deny']);
  });
});
