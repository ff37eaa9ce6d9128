import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/build';
import { expectNoStackTrace, runCli, writeSetup } from './support/cli';
import { run } from './support/run';

const MAIN = path.join(ROOT, 'dist/src/main.js');

function tollgate(args: readonly string[], cwd = ROOT) {
  return runCli(MAIN, args, cwd);
}

beforeAll(async () => {
  // The CLI is tested as shipped: compiled, run by node.
  const build = await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json')], { timeoutMs: 60_000 });
  expect(build.stderr + build.stdout.toString()).toBe('');
}, 70_000);

describe('tollgate CLI', () => {
  test('--help on each command', async () => {
    for (const args of [['--help'], ['check', '--help'], ['ca', '--help']]) {
      const result = await tollgate(args);
      expect(result.code).toBe(0);
      expect(result.out).toMatch(/^Usage: tollgate/);
    }
  });

  test('an unknown option is a usage error, not ignored', async () => {
    const result = await tollgate(['--confg', 'x.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown option --confg/);
  });

  test('check prints the compiled rule table of the shipped configuration', async () => {
    const result = await tollgate(['check', '--config', path.join(ROOT, 'tollgate.yaml')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/PATTERN\s+ACTION\s+PORTS\s+WHO\s+RULE\s+REASON/);
    expect(result.out).toMatch(/\.pastebin\.com\s+deny/);
    expect(result.out).toMatch(/\(anything else\)\s+deny\s+allowed_ports\s+everyone\s+default_action/);
  });

  test('check orders rules most specific first', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'policies: p\n',
      'p/a.yaml':
        'rules:\n  - match: .example.com\n    action: splice\n  - match: "*.example.com"\n    action: deny\n  - match: api.example.com\n    action: splice\n  - match: 10.0.0.0/8\n    action: deny\n  - match: 10.1.2.3\n    action: splice\n',
    });
    const result = await tollgate(['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(0);
    const lines = result.out.split('\n');
    const patterns = lines
      .slice(lines.findIndex((l) => l.startsWith('PATTERN')) + 1)
      .filter((l) => /^\S+\s+(deny|splice|inspect)/.test(l))
      .map((l) => l.split(/\s+/)[0]);
    expect(patterns).toEqual(['api.example.com', '*.example.com', '.example.com', '10.1.2.3', '10.0.0.0/8']);
    expect(lines[lines.length - 2]).toMatch(/^\(anything else\)\s+deny/);
  });

  test('check rejects a broken policy file naming the file, line, key and fix, without a stack trace', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'policies: p\n',
      'p/good.yaml': 'rules:\n  - match: example.com\n    action: splice\n',
      'p/bad.yaml': 'rules:\n  - match: example.org\n    action: allow\n  - match: "exa*mple.net"\n    action: deny\n  - match: example.com\n    action: deny\n',
    });
    const result = await tollgate(['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/p\/bad\.yaml:3: rules\[0\]\.action: expected one of: deny, splice, inspect/);
    expect(result.stderr).toMatch(/p\/bad\.yaml:4: rules\[1\]\.match: "exa\*mple\.net": "\*" is only allowed as the whole first label/);
    expect(result.stderr).toMatch(/p\/good\.yaml:2: match: pattern "example\.com" is also used by the rule at .*p\/bad\.yaml:6/);
    expectNoStackTrace(result.stderr);
  });

  test('a bad configuration stops start-up with the key and line, no stack trace', async () => {
    const dir = writeSetup({ 'tollgate.yaml': 'listen:\n  explicit: 127.0.0.1:3128\n  sock: 127.0.0.1:1080\n' });
    const result = await tollgate(['--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/tollgate\.yaml:3: listen\.sock: unknown key; known keys here: explicit, socks/);
    expectNoStackTrace(result.stderr);
  });

  test('a configuration without any listener for client traffic stops start-up, naming the keys to set', async () => {
    const dir = writeSetup({ 'tollgate.yaml': '# nothing here yet\n', 'policies/.keep': '' });
    const result = await tollgate(['--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/tollgate\.yaml: listen: no listener for client traffic: set listen\.explicit \(such as 127\.0\.0\.1:3128\)/);
    expectNoStackTrace(result.stderr);
  });

  test('a missing configuration file says so', async () => {
    const result = await tollgate(['--config', '/nonexistent/tollgate.yaml']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/cannot read configuration: file not found/);
  });

  test('runs, logs its bound address, and exits 0 on SIGTERM', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'listen:\n  explicit: 127.0.0.1:0\npolicies: p\naudit:\n  file: audit.ndjson\n',
      'p/a.yaml': 'rules: []\n',
    });
    const child = spawn(process.execPath, [MAIN, '--config', path.join(dir, 'tollgate.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
        if (line) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
    });
    const port = await listening;
    expect(port).toBeGreaterThan(0);
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/"msg":"gateway stopped"/);
  });

  test('SIGHUP reloads the configuration file too: a changed default_action is a new policy version', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'listen:\n  explicit: 127.0.0.1:0\npolicies: p\ndefault_action: deny\naudit:\n  file: audit.ndjson\n',
      'p/a.yaml': 'rules: []\n',
    });
    const configFile = path.join(dir, 'tollgate.yaml');
    const child = spawn(process.execPath, [MAIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const lines = (): Record<string, unknown>[] =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const waitFor = async (predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> => {
      for (let i = 0; i < 200 && !lines().some(predicate); i++) await new Promise((r) => setTimeout(r, 50));
      return lines().find(predicate);
    };
    try {
      const loaded = await waitFor((l) => l.msg === 'policy loaded');
      expect(loaded).toBeDefined();
      // Signal handlers are installed once start-up is complete ("ready").
      expect(await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'))).toBeDefined();
      writeFileSync(configFile, 'listen:\n  explicit: 127.0.0.1:0\npolicies: p\ndefault_action: splice\naudit:\n  file: audit.ndjson\nhttp:\n  via: elsewhere\n');
      child.kill('SIGHUP');
      const reloaded = await waitFor((l) => l.trigger === 'SIGHUP' && typeof l.msg === 'string' && l.msg.startsWith('policy reloaded'));
      expect(reloaded).toBeDefined();
      expect(reloaded!.policy_version).not.toBe(loaded!.policy_version);
      // Sections a running process cannot change are named, not silently ignored.
      const warned = await waitFor((l) => l.msg === 'configuration changes in these sections take effect after a restart');
      expect(warned?.sections).toEqual(['http']);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});

describe('tollgate ca export', () => {
  test('prints the CA certificate as PEM or DER and never the key; generates the CA once with key mode 0600', async () => {
    const dir = writeSetup({ 'tollgate.yaml': 'ca:\n  cert: c/ca.pem\n  key: c/ca.key\n' });
    const config = path.join(dir, 'tollgate.yaml');
    const pem = await tollgate(['ca', 'export', '--config', config]);
    expect(pem.code).toBe(0);
    expect(pem.out).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(pem.out + pem.stderr).not.toMatch(/PRIVATE KEY/);
    expect(statSync(path.join(dir, 'c/ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'c/ca.pem')).mode & 0o777).toBe(0o644);
    const der = await tollgate(['ca', 'export', '--format', 'der', '--config', config]);
    expect(der.code).toBe(0);
    const fromDer = new X509Certificate(der.stdout);
    const fromPem = new X509Certificate(readFileSync(path.join(dir, 'c/ca.pem')));
    expect(fromDer.fingerprint256).toBe(fromPem.fingerprint256);
    expect(fromDer.ca).toBe(true);
    const bad = await tollgate(['ca', 'export', '--format', 'p12', '--config', config]);
    expect(bad.code).toBe(2);
  });

  test('refuses to start when the CA key is readable by others', async () => {
    const dir = writeSetup({ 'tollgate.yaml': 'ca:\n  cert: c/ca.pem\n  key: c/ca.key\n' });
    const config = path.join(dir, 'tollgate.yaml');
    expect((await tollgate(['ca', 'export', '--config', config])).code).toBe(0);
    chmodSync(path.join(dir, 'c/ca.key'), 0o644);
    const result = await tollgate(['ca', 'export', '--config', config]);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/chmod 600/);
    expectNoStackTrace(result.stderr);
  });
});

describe('tollgate explain', () => {
  const setup = () =>
    writeSetup({
      'tollgate.yaml': 'policies: p\n',
      'p/a.yaml': [
        'rules:',
        '  - name: corp',
        '    match: .corp.example',
        '    action: inspect',
        '    reason: corporate services are inspected',
        '    http:',
        '      - name: no-admin',
        '        request: { path: "/admin/**" }',
        '        action: deny',
        '      - name: watch-posts',
        '        request: { method: [POST] }',
        '        action: log',
        '    dlp:',
        '      detectors: [payment_card, github_token]',
        '      patterns: [{ name: employee_id, regex: "EMP-[0-9]{6}" }]',
        '      action: deny',
        '  - match: bank.example',
        '    action: splice',
        '',
      ].join('\n'),
    });

  test('names the deciding rule, pattern, reason and the HTTP rules in order', async () => {
    const dir = setup();
    const result = await tollgate(['explain', 'https://wiki.corp.example/admin/users', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.stderr).toBe('');
    expect(result.out).toMatch(/destination:\s+wiki\.corp\.example:443 \(name\), as a CONNECT tunnel \(https\)/);
    expect(result.out).toMatch(/decision:\s+inspect/);
    expect(result.out).toMatch(/decided by:\s+rule corp \(.*p\/a\.yaml:2\), pattern \.corp\.example/);
    expect(result.out).toMatch(/reason:\s+corporate services are inspected/);
    expect(result.out).toMatch(/1\. deny\s+no-admin: path \/admin\/\*\*/);
    expect(result.out).toMatch(/A GET of \/admin\/users: denied by no-admin/);
    // The destination is inspected, but this request is denied: the answer is deny, exit 1.
    expect(result.out).toMatch(/result:\s+deny/);
    expect(result.code).toBe(1);
  });

  test('host:port and the default action', async () => {
    const dir = setup();
    const spliced = await tollgate(['explain', 'bank.example:443', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(spliced.out).toMatch(/decision:\s+splice/);
    expect(spliced.code).toBe(0);
    const other = await tollgate(['explain', 'http://elsewhere.example/', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(other.code).toBe(1);
    expect(other.out).toMatch(/decision:\s+deny/);
    expect(other.out).toMatch(/decided by:\s+default_action \(no rule matches\)/);
    const bad = await tollgate(['explain', 'not a host', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid destination/);
  });

  test('check lists HTTP rules per destination in evaluation order', async () => {
    const dir = setup();
    const result = await tollgate(['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(
      /corp \(\.corp\.example\):\n\s+1\. deny\s+no-admin: path \/admin\/\*\*\n\s+2\. log\s+watch-posts: method POST\n\s+upload: dlp deny: payment_card, github_token, employee_id/,
    );
  });

  test('check refuses an unbounded or catastrophic DLP pattern naming file, line and why', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'policies: p\n',
      'p/a.yaml':
        'rules:\n  - match: .corp.example\n    action: inspect\n    dlp:\n      action: deny\n      patterns:\n        - name: anything\n          regex: "secret=.+"\n        - name: nested\n          regex: "(a{1,9}){1,9}"\n',
    });
    const result = await tollgate(['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/p\/a\.yaml:8: rules\[0\]\.dlp\.patterns\[0\]\.regex: unbounded repetition "\.\+"/);
    expect(result.stderr).toMatch(/p\/a\.yaml:10: rules\[0\]\.dlp\.patterns\[1\]\.regex: nested repetition/);
    expectNoStackTrace(result.stderr);
  });
});

describe('tollgate run: start banner', () => {
  test('prints the listening addresses and a curl to try, as JSON log lines when stdout is not a terminal', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0\npolicies: p\naudit:\n  file: audit.ndjson\npinning:\n  state_file: null\n',
      'p/a.yaml': 'rules: []\n',
    });
    const child = spawn(process.execPath, [MAIN, '--config', path.join(dir, 'tollgate.yaml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const deadline = Date.now() + 15_000;
    while (!out.includes('ready: try') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const messages = out
      .split('\n')
      .filter(Boolean)
      .map((l) => String((JSON.parse(l) as { msg: string }).msg));
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^explicit proxy: http:\/\/127\.0\.0\.1:[0-9]+$/),
        expect.stringMatching(/^admin: http:\/\/127\.0\.0\.1:[0-9]+\/ /),
        expect.stringMatching(/^ready: try {2}curl --cacert certs\/ca\.pem -x http:\/\/127\.0\.0\.1:[0-9]+ https:\/\/example\.com\/$/),
      ]),
    );
    expect(code).toBe(0);
  });
});
