import path from 'node:path';
import { explain } from '../../src/cli/explain';
import { buildCli } from './support/build';
import { expectNoStackTrace, runCli, writeSetup } from './support/cli';

/** `tollgate explain udp://host[:port]`: the decision a SOCKS5 UDP datagram would get. */
let MAIN = '';

beforeAll(async () => {
  MAIN = await buildCli('socks-udp-explain');
}, 100_000);

const tollgate = (args: readonly string[]) => runCli(MAIN, args);

function setup(): string {
  const dir = writeSetup({
    'tollgate.yaml': 'policies: p\nca:\n  cert: c/ca.pem\n  key: c/ca.key\n',
    'p/a.yaml': ['rules:', '  - name: resolvers', '    match: .dns.example', '    action: splice', '  - name: voip', '    match: voip.example', '    action: inspect', '    ports: [5060]', ''].join(
      '\n',
    ),
  });
  return path.join(dir, 'tollgate.yaml');
}

describe('tollgate explain for UDP destinations', () => {
  test.each([
    ['port 53 by default, in allowed_ports.udp', 'udp://ns1.dns.example', 'splice', 'rule'],
    ['a port only allowed_ports.tunnel has', 'udp://ns1.dns.example:443', 'deny', 'port'],
    ["a port the rule's ports list", 'udp://voip.example:5060', 'inspect', 'rule'],
    ['no rule', 'udp://elsewhere.example:53', 'deny', 'default'],
  ])('%s', (_what, destination, result, code) => {
    const answer = explain(setup(), { destination, user: null, frontend: null, method: null, headers: [] });
    expect([answer.frontend, answer.result, answer.decision.code]).toEqual(['socks-udp', result, code]);
  });

  test('text and --json, exit 0 when relayed and 1 when dropped', async () => {
    const config = setup();
    const text = await tollgate(['explain', 'udp://ns1.dns.example:53', '--config', config]);
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' });
    expect(text.out).toMatch(/^destination:\s+ns1\.dns\.example:53 \(name\), as a SOCKS5 UDP datagram/m);
    expect(text.out).toMatch(/UDP is never decrypted/);
    expect(text.out).toMatch(/^result:\s+splice$/m);
    const json = await tollgate(['explain', 'udp://ns1.dns.example:443', '--json', '--config', config]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({ destination: 'ns1.dns.example:443', frontend: 'socks-udp', decision: { action: 'deny', code: 'port', rule: 'resolvers' }, result: 'deny' });
  });

  test('--frontend other than socks is a usage error (exit 2)', async () => {
    const result = await tollgate(['explain', 'udp://ns1.dns.example', '--frontend', 'transparent', '--config', setup()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--frontend transparent does not carry UDP/);
    expectNoStackTrace(result.stderr);
  });
});
