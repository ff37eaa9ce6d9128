import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildCli, ROOT } from './support/build';
import { expectNoStackTrace, runCli, writeSetup } from './support/cli';

/**
 * `tollgate check` and `tollgate explain` (text and --json) say which parent proxy a destination
 * leaves through, never the parent's credentials; mistakes in upstream.parents, upstream.via and
 * a rule's via are refused with the file, the key and the fix.
 */

let main: string;

beforeAll(async () => {
  main = await buildCli('parent-cli');
}, 100_000);

const CONFIG = [
  'policies: p',
  'upstream:',
  '  via: corp',
  '  parents:',
  '    corp: { url: "http://proxy.corp.example:3128", credentials_file: corp.cred }',
  '    backup: { url: "http://10.0.0.9:3128", credentials_env: BACKUP_PROXY_CREDENTIALS }',
  '',
].join('\n');

const POLICY = [
  'rules:',
  '  - name: bank',
  '    match: bank.example',
  '    action: splice',
  '    via: direct',
  '  - name: saas',
  '    match: .saas.example',
  '    action: inspect',
  '    via: [corp, backup]',
  '  - match: news.example',
  '    action: splice',
  '',
].join('\n');

const setup = (config = CONFIG, policy = POLICY) => writeSetup({ 'tollgate.yaml': config, 'p/a.yaml': policy, 'corp.cred': 'gateway:s3cret-value\n' });

describe('tollgate check and explain with parent proxies', () => {
  test('check lists the parents (credentials by source only) and the rules that name a via', async () => {
    const dir = setup();
    const result = await runCli(main, ['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/upstream\.via: corp /);
    expect(result.out).toMatch(/parent corp: http:\/\/proxy\.corp\.example:3128, Basic credentials from credentials_file .*corp\.cred/);
    expect(result.out).toMatch(/parent backup: http:\/\/10\.0\.0\.9:3128, Basic credentials from credentials_env BACKUP_PROXY_CREDENTIALS/);
    expect(result.out).toMatch(/rule bank \(bank\.example\): via direct/);
    expect(result.out).toMatch(/rule saas \(\.saas\.example\): via corp,backup/);
    expect(result.out).not.toMatch(/s3cret/);
    const json = await runCli(main, ['check', '--json', '--config', path.join(dir, 'tollgate.yaml')]);
    const parsed = JSON.parse(json.out) as { upstream: { via: string; parents: { name: string; url: string }[]; rules: { rule: string; via: string }[] } };
    expect(parsed.upstream.via).toBe('corp');
    expect(parsed.upstream.parents.map((p) => p.name)).toEqual(['corp', 'backup']);
    expect(parsed.upstream.rules).toEqual([
      { rule: 'bank', via: 'direct' },
      { rule: 'saas', via: 'corp,backup' },
    ]);
    expect(json.out).not.toMatch(/s3cret/);
  });

  test('explain names the parent a destination leaves through: the rule’s via, else upstream.via', async () => {
    const dir = setup();
    const config = path.join(dir, 'tollgate.yaml');
    const saas = await runCli(main, ['explain', 'https://app.saas.example/', '--config', config]);
    expect(saas.stderr).toBe('');
    expect(saas.out).toMatch(/leaves:\s+through parent proxy corp \(http:\/\/proxy\.corp\.example:3128\), then parent proxy backup \(http:\/\/10\.0\.0\.9:3128\)/);
    const bank = await runCli(main, ['explain', 'bank.example:443', '--config', config]);
    expect(bank.out).toMatch(/leaves:\s+direct/);
    const news = await runCli(main, ['explain', 'news.example:443', '--json', '--config', config]);
    expect(JSON.parse(news.out)).toMatchObject({ via: 'corp', parents: [{ name: 'corp', url: 'http://proxy.corp.example:3128' }] });
    // Denied (default_action deny): nothing leaves.
    const other = await runCli(main, ['explain', 'elsewhere.example:443', '--json', '--config', config]);
    expect(JSON.parse(other.out)).toMatchObject({ result: 'deny', via: null });
  });

  test('an unknown parent in a policy rule is a policy error naming the rule, the key and the fix', async () => {
    const dir = setup(CONFIG, 'rules:\n  - name: saas\n    match: .saas.example\n    action: inspect\n    via: [corp, cropo]\n');
    const result = await runCli(main, ['check', '--config', path.join(dir, 'tollgate.yaml')]);
    expect(result.code).not.toBe(0);
    expectNoStackTrace(result.stderr);
    expect(result.stderr).toMatch(/p\/a\.yaml:5: rules\[0\]\.via\[1\]: unknown parent proxy "cropo"; use direct or a name defined under upstream\.parents: one of corp, backup/);
  });

  test('via on a deny rule and direct in a failover list are refused', async () => {
    const policy = 'rules:\n  - match: a.example\n    action: deny\n    via: corp\n  - match: b.example\n    action: splice\n    via: [corp, direct]\n';
    const result = await runCli(main, ['check', '--config', path.join(setup(CONFIG, policy), 'tollgate.yaml')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/rules\[0\]\.via: via only applies to rules that let traffic through/);
    expect(result.stderr).toMatch(/rules\[1\]\.via\[1\]: direct cannot be part of a failover list/);
  });

  test('configuration mistakes name the key and the fix', async () => {
    const cases: [string, RegExp][] = [
      ['policies: p\nupstream:\n  via: nowhere\n', /upstream\.via: unknown parent proxy "nowhere"; define it under upstream\.parents or use direct/],
      ['policies: p\nupstream:\n  parents:\n    corp: { url: "http://user:pw@proxy:3128" }\n', /upstream\.parents\.corp\.url: no credentials in the URL .*credentials_file/],
      ['policies: p\nupstream:\n  parents:\n    corp: { url: "socks5://proxy:1080" }\n', /upstream\.parents\.corp\.url: .*expected http:\/\/host:port or https:\/\/host:port/],
      ['policies: p\nupstream:\n  parents:\n    corp: { url: "http://proxy" }\n', /upstream\.parents\.corp\.url: .*name the port, such as http:\/\/proxy:3128/],
      ['policies: p\nupstream:\n  parents:\n    corp: { url: "http://proxy:3128", credentials_file: a, credentials_env: B }\n', /credentials_env: give credentials_file or credentials_env, not both/],
    ];
    for (const [config, message] of cases) {
      const result = await runCli(main, ['check', '--config', path.join(setup(config, 'rules: []\n'), 'tollgate.yaml')]);
      expect(result.code).not.toBe(0);
      expectNoStackTrace(result.stderr);
      expect(result.stderr).toMatch(message);
    }
  });

  test("the README's Parent proxies example is complete: check accepts it and explain follows it", async () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Parent proxies'), readme.indexOf('## Destination guard and loops'));
    const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(2);
    const dir = writeSetup({ 'tollgate.yaml': blocks[0]!, 'policies/egress.yaml': blocks[1]!, 'secrets/corp-proxy': 'gateway:example\n' });
    const config = path.join(dir, 'tollgate.yaml');
    const check = await runCli(main, ['check', '--config', config]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    const explained = await runCli(main, ['explain', 'https://app.saas.example/', '--config', config]);
    expect(explained.out).toMatch(/leaves:\s+through parent proxy corp \(http:\/\/proxy\.corp\.example:3128\), then parent proxy backup/);
    const bank = await runCli(main, ['explain', 'www.bank.example:443', '--config', config]);
    expect(bank.out).toMatch(/leaves:\s+direct/);
  });
});
