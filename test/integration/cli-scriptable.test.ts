import path from 'node:path';
import { buildCli } from './support/build';
import { explain } from '../../src/cli/explain';
import { expectNoStackTrace, runCli, writeSetup } from './support/cli';

/**
 * The CLI as scripts use it: --version, --json, global options on either side of the command,
 * and exit codes that tell "denied" from "usage error" from "invalid configuration".
 */
let MAIN = '';

beforeAll(async () => {
  MAIN = await buildCli('cli-scriptable');
}, 100_000);

const tollgate = (args: readonly string[]) => runCli(MAIN, args);

// A real scrypt hash is not needed: the users file is validated for its form, not checked.
const HASH = '$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';

function setup(): string {
  const dir = writeSetup({
    'tollgate.yaml': 'policies: p\nauth:\n  users_file: users.yaml\nca:\n  cert: c/ca.pem\n  key: c/ca.key\n',
    'users.yaml': `users:\n  alice:\n    password: ${HASH}\n    groups: [eng]\n  bob:\n    password: ${HASH}\n    groups: [sales]\n`,
    'p/a.yaml': [
      'rules:',
      '  - name: gh-eng',
      '    match: .github.com',
      '    action: splice',
      '    groups: [eng]',
      '  - name: gh-everyone',
      '    match: .github.com',
      '    action: deny',
      '    reason: source hosting is for engineering',
      '  - name: gh-contractors',
      '    match: .github.com',
      '    action: inspect',
      '    groups: [contractors]',
      '  - name: wiki-alice',
      '    match: wiki.corp.example',
      '    action: inspect',
      '    users: [alice]',
      '  - name: wiki-eng',
      '    match: wiki.corp.example',
      '    action: splice',
      '    groups: [eng]',
      '  - name: wiki',
      '    match: wiki.corp.example',
      '    action: deny',
      '  - name: storage',
      '    match: .storage.example',
      '    action: inspect',
      '    http:',
      '      - name: no-admin',
      '        request: { path: "/admin/**" }',
      '        action: deny',
      '        reason: the admin console is not reachable from here',
      '      - name: no-bots',
      '        request: { headers: { User-Agent: "evilbot/*" } }',
      '        action: deny',
      '      - name: no-deletes',
      '        request: { method: [DELETE] }',
      '        action: deny',
      '',
    ].join('\n'),
  });
  return path.join(dir, 'tollgate.yaml');
}

describe('tollgate --version', () => {
  test('prints the version as text and as JSON', async () => {
    const text = await tollgate(['--version']);
    expect({ code: text.code, out: text.out }).toEqual({ code: 0, out: `tollgate 0.1.0 (node ${process.version})\n` });
    const json = await tollgate(['--version', '--json']);
    expect(JSON.parse(json.out)).toEqual({ version: '0.1.0', node: process.version });
  });
});

describe('global options before or after the command', () => {
  test('--config before the command works as after it, for every command', async () => {
    const config = setup();
    const before = await tollgate(['--config', config, 'ca', 'export']);
    expect(before.code).toBe(0);
    expect(before.out).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const after = await tollgate(['ca', 'export', '--config', config]);
    expect(after.out).toBe(before.out);
    expect((await tollgate([`--config=${config}`, '--json', 'check'])).code).toBe(0);
    expect((await tollgate(['--config', config, 'explain', 'api.github.com:443'])).code).toBe(1);
  });

  test('a command-only option before the command, or --json where there is none, is a usage error (2)', async () => {
    const config = setup();
    const early = await tollgate(['--user', 'alice', 'explain', 'api.github.com:443', '--config', config]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/unknown option --user/);
    const json = await tollgate(['ca', 'export', '--json', '--config', config]);
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/--json is available for check, explain/);
    const twice = await tollgate(['--config', config, 'check', '--config', '/elsewhere.yaml']);
    expect(twice.code).toBe(2);
  });
});

describe('tollgate check: who each rule is for, and rules no request reaches', () => {
  test('the table shows user and group conditions and marks rules that never decide', async () => {
    const config = setup();
    const result = await tollgate(['check', '--config', config]);
    expect(result.code).toBe(0);
    const row = (rule: string): string => result.out.split('\n').find((l) => new RegExp(`\\s${rule}\\s`).test(`${l} `)) ?? '';
    expect(row('gh-eng')).toMatch(/^\.github\.com\s+splice\s+allowed_ports\s+groups: eng\s+gh-eng/);
    expect(row('gh-everyone')).toMatch(/^\.github\.com\s+deny\s+allowed_ports\s+everyone\s+gh-everyone\s+source hosting/);
    expect(row('wiki-alice')).toMatch(/^wiki\.corp\.example\s+inspect\s+allowed_ports\s+users: alice\s+wiki-alice/);
    // Limited to a group nobody is in; and wiki-eng: its only member, alice, has a rule of her own first.
    expect(row('gh-contractors')).toMatch(/inspect \(never decides\)/);
    expect(row('wiki-eng')).toMatch(/splice \(never decides\)/);
    expect(row('gh-eng')).not.toMatch(/never decides/);
    expect(result.out).toMatch(/gh-contractors \(\S*p\/a\.yaml:10\), pattern \.github\.com: limited to groups contractors, but no user in the users file is one of them/);
    expect(result.out).toMatch(/wiki-eng \(\S*p\/a\.yaml:18\), pattern wiki\.corp\.example: every request it could match is decided first by wiki-alice/);
  });

  test('--json: the same facts, parseable; an invalid policy gives ok: false with each problem, exit 3', async () => {
    const config = setup();
    const result = await tollgate(['check', '--json', '--config', config]);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.out) as {
      ok: boolean;
      policy: {
        rules: { id: string; groups: string[] | null; users: string[] | null; unreachable: { why: string }[]; http: { id: string }[] }[];
        table: { rule: string; who: string; decides: boolean }[];
      };
      warnings: string[];
    };
    expect(doc.ok).toBe(true);
    const rule = (id: string) => doc.policy.rules.find((r) => r.id === id)!;
    expect(rule('gh-eng').groups).toEqual(['eng']);
    expect(rule('wiki-alice').users).toEqual(['alice']);
    expect(rule('gh-contractors').unreachable).toHaveLength(1);
    expect(rule('gh-everyone').unreachable).toEqual([]);
    expect(rule('storage').http.map((h) => h.id)).toEqual(['no-admin', 'no-bots', 'no-deletes']);
    expect(doc.policy.table.find((r) => r.rule === 'wiki-eng')).toMatchObject({ who: 'groups: eng', decides: false });
    expect(doc.warnings).toHaveLength(2);

    const broken = writeSetup({ 'tollgate.yaml': 'policies: p\n', 'p/a.yaml': 'rules:\n  - match: example.com\n    action: allow\n' });
    const bad = await tollgate(['check', '--json', '--config', path.join(broken, 'tollgate.yaml')]);
    expect(bad.code).toBe(3);
    const problems = JSON.parse(bad.out) as { ok: boolean; problems: { file: string; line: number; path: string; message: string }[] };
    expect(problems.ok).toBe(false);
    expect(problems.problems).toEqual([expect.objectContaining({ line: 3, path: 'rules[0].action', message: expect.stringMatching(/expected one of: deny, splice, inspect/) })]);
    expectNoStackTrace(bad.stderr);
  });
});

describe('tollgate explain: method, headers, user, front-end; exit 0 allowed, 1 denied', () => {
  // The decisions, in process (each spawn costs most of a second on a busy machine) ...
  test.each([
    ['an inspected page', 'https://files.storage.example/docs/a', {}, 'inspect'],
    ['a path an HTTP rule denies', 'https://files.storage.example/admin/x', {}, 'deny'],
    ['a method an HTTP rule denies', 'https://files.storage.example/docs/a', { method: 'delete' }, 'deny'],
    ['a header an HTTP rule denies', 'https://files.storage.example/docs/a', { headers: ['User-Agent: evilbot/2.0'] }, 'deny'],
    ['a header the rule does not mind', 'https://files.storage.example/docs/a', { headers: ['User-Agent: curl/8'] }, 'inspect'],
    ['a group-limited splice for its group', 'api.github.com:443', { user: 'alice' }, 'splice'],
    ['the same destination for someone else', 'api.github.com:443', { user: 'bob' }, 'deny'],
    ['anonymous', 'api.github.com:443', {}, 'deny'],
    ['through SOCKS', 'api.github.com:443', { user: 'alice', frontend: 'socks' }, 'splice'],
    ['a redirected TLS connection (anonymous)', 'https://api.github.com/', { frontend: 'transparent' }, 'deny'],
  ])('%s', (_what, destination, options, result) => {
    const answer = explain(setup(), { destination, user: null, frontend: null, method: null, headers: [], ...(options as object) });
    expect(answer.result).toBe(result);
  });

  // ... and the command itself: its last line, its JSON, its exit code.
  test.each([
    [['https://files.storage.example/docs/a', '--header', 'User-Agent: curl/8'], 0, 'inspect'],
    [['https://files.storage.example/docs/a', '--header', 'User-Agent: evilbot/2.0'], 1, 'deny'],
    [['api.github.com:443', '--user', 'alice', '--frontend', 'socks'], 0, 'splice'],
  ])('explain %j exits %d (%s)', async (args, code, result) => {
    const config = setup();
    const text = await tollgate(['explain', ...(args as string[]), '--config', config]);
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code, stderr: '' });
    expect(text.out).toMatch(new RegExp(`^result:\\s+${result}$`, 'm'));
    const json = await tollgate(['explain', ...(args as string[]), '--json', '--config', config]);
    expect(json.code).toBe(code);
    expect((JSON.parse(json.out) as { result: string }).result).toBe(result);
  });

  test('--json carries the deciding rule, the request verdict and the HTTP rule that decided', async () => {
    const config = setup();
    const result = await tollgate(['explain', 'https://files.storage.example/admin/x', '--method', 'POST', '--header', 'X-Trace: 1', '--json', '--config', config]);
    const doc = JSON.parse(result.out) as Record<string, unknown>;
    expect(doc).toMatchObject({
      destination: 'files.storage.example:443',
      frontend: 'explicit-connect',
      decision: { action: 'inspect', code: 'rule', rule: 'storage', pattern: '.storage.example' },
      request: { method: 'POST', path: '/admin/x', verdict: 'deny', http_rule: 'no-admin', reason: 'the admin console is not reachable from here' },
      result: 'deny',
    });
  });

  test('usage errors exit 2 and are told apart from denials', async () => {
    const config = setup();
    for (const args of [
      ['explain', 'https://x.storage.example/', '--frontend', 'carrier-pigeon'],
      ['explain', 'http://x.storage.example/', '--frontend', 'socks'],
      ['explain', 'x.storage.example:443', '--method', 'GET'],
      ['explain', 'https://x.storage.example/', '--header', 'no colon'],
    ]) {
      const result = await tollgate([...args, '--config', config]);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
    }
  });
});
