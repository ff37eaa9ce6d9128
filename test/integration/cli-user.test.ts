import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, buildCli } from './support/build';
import { expectNoStackTrace, runCli, writeSetup } from './support/cli';
import { startTestGateway } from './support/gateway';
import { startHttpOrigin } from './support/origins';
import { tempDir } from './support/pki';
import { curl, run } from './support/run';

// Its own build directory: jest runs this file beside cli.test.ts, which builds into dist/.
let MAIN = '';

beforeAll(async () => {
  MAIN = await buildCli('cli-user');
}, 100_000);

function tollgate(args: readonly string[], cwd = ROOT) {
  return runCli(MAIN, args, cwd);
}

describe('tollgate user', () => {
  const PASSWORD = 'cli-Added-passw0rd';

  function tollgateWithInput(args: readonly string[], input: string) {
    return run(process.execPath, [MAIN, ...args], { timeoutMs: 20_000, input }).then((r) => ({ ...r, out: r.stdout.toString() }));
  }

  test('--help on each user command', async () => {
    for (const args of [
      ['user', '--help'],
      ['user', 'add', '--help'],
      ['user', 'remove', '--help'],
      ['user', 'list', '--help'],
    ]) {
      const result = await tollgate(args);
      expect(result.code).toBe(0);
      expect(result.out).toMatch(/^Usage: tollgate user/);
    }
  });

  test('add prompts on a terminal twice without echo', async () => {
    const usersFile = path.join(tempDir('tty'), 'users.yaml');
    const password = 'tty-Secret-pass';
    // A real pseudo-terminal: the password is typed only once each prompt has appeared.
    const script = [
      'import os, pty, select, sys, time',
      'pid, fd = pty.fork()',
      'if pid == 0:',
      `    os.execv(${JSON.stringify(process.execPath)}, [${JSON.stringify(process.execPath)}, ${JSON.stringify(MAIN)}, "user", "add", "dave", "--groups", "ops", "--users-file", ${JSON.stringify(usersFile)}])`,
      'out = b""',
      'def read_until(token, timeout=20):',
      '    global out',
      '    end = time.time() + timeout',
      '    while token not in out and time.time() < end:',
      '        r, _, _ = select.select([fd], [], [], 0.2)',
      '        if r:',
      '            try:',
      '                out += os.read(fd, 1024)',
      '            except OSError:',
      '                return',
      'read_until(b"Password: ")',
      'time.sleep(0.3)',
      `os.write(fd, b"${password}\\r")`,
      'read_until(b"Repeat password: ")',
      'time.sleep(0.3)',
      `os.write(fd, b"${password}\\r")`,
      'read_until(b"SIGHUP")',
      '_, status = os.waitpid(pid, 0)',
      'sys.stdout.write(out.decode("utf-8", "replace"))',
      'sys.exit(os.WEXITSTATUS(status))',
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 40_000 });
    const out = result.stdout.toString();
    expect(`${out}${result.stderr}`).toMatch(/Password: [\s\S]*Repeat password: [\s\S]*user dave added/);
    expect(out).not.toContain(password);
    expect(result.code).toBe(0);
    expect(readFileSync(usersFile, 'utf8')).toMatch(/dave:\n\s+password: \$scrypt\$/);
  }, 45_000);

  test('add with --password-stdin, then a client authenticates with those credentials; list and remove', async () => {
    const dir = writeSetup({
      'tollgate.yaml': 'policies: p\nauth:\n  users_file: users.yaml\n',
      'p/site.yaml': 'rules:\n  - match: wiki.corp.example\n    action: splice\n    groups: [eng]\n',
    });
    const config = path.join(dir, 'tollgate.yaml');
    const usersFile = path.join(dir, 'users.yaml');
    const added = await tollgateWithInput(['user', 'add', 'alice', '--groups', 'eng,ops', '--password-stdin', '--config', config], `${PASSWORD}\n`);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.out).toMatch(/user alice added in .*users\.yaml \(groups: eng, ops\)/);
    expect(statSync(usersFile).mode & 0o777).toBe(0o600);
    const text = readFileSync(usersFile, 'utf8');
    expect(text).toMatch(/password: \$scrypt\$ln=15,r=8,p=1\$/);
    expect(text).not.toContain(PASSWORD);

    // No terminal and no --password-stdin: refuse rather than read a password from a pipe unasked.
    const noTty = await tollgateWithInput(['user', 'add', 'bob', '--users-file', usersFile], 'x\n');
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/--password-stdin/);
    const short = await tollgateWithInput(['user', 'add', 'bob', '--users-file', usersFile, '--password-stdin'], 'short\n');
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/at least 8 characters/);
    const badName = await tollgateWithInput(['user', 'add', 'bad:name', '--users-file', usersFile, '--password-stdin'], `${PASSWORD}\n`);
    expect(badName.code).toBe(2);

    const list = await tollgate(['user', 'list', '--config', config]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/alice\s+eng, ops/);
    expect(list.out).not.toMatch(/scrypt/);

    const check = await tollgate(['check', '--config', config]);
    expect(check.code).toBe(0);
    expect(check.out).toMatch(/users .*users\.yaml: 1 users in 2 groups/);
    const brokenDir = writeSetup({ 'tollgate.yaml': 'policies: p\nauth:\n  users_file: users.yaml\n', 'p/x.yaml': 'rules: []\n', 'users.yaml': 'users:\n  eve:\n    password: plain-text\n' });
    const broken = await tollgate(['check', '--config', path.join(brokenDir, 'tollgate.yaml')]);
    expect(broken.code).toBe(3);
    expect(broken.stderr).toMatch(/users\.yaml:3: users\.eve\.password: not a password hash: .*tollgate user add eve/);
    expectNoStackTrace(broken.stderr);
    const explained = await tollgate(['explain', 'wiki.corp.example:443', '--user', 'alice', '--config', config]);
    expect(explained.out).toMatch(/user:\s+alice \(groups: eng, ops\)/);
    expect(explained.out).toMatch(/decision:\s+splice/);
    const anonymous = await tollgate(['explain', 'wiki.corp.example:443', '--config', config]);
    expect(anonymous.out).toMatch(/decision:\s+deny/);
    const unknownUser = await tollgate(['explain', 'wiki.corp.example:443', '--user', 'zed', '--config', config]);
    expect(unknownUser.code).toBe(2);
    expect(unknownUser.stderr).toMatch(/no user "zed"/);

    const origin = await startHttpOrigin('cli-origin');
    const gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      extraConfig: `auth:\n  users_file: ${usersFile}\n`,
    });
    try {
      const target = `http://origin.test:${origin.port}/hello`;
      expect((await curl(['-x', gw.proxy, target])).status).toBe(407);
      const ok = await curl(['-x', gw.proxy, '--proxy-user', `alice:${PASSWORD}`, target]);
      expect(ok.status).toBe(200);
      expect(ok.body).toBe('hello from cli-origin\n');
    } finally {
      await gw.stop();
      await origin.close();
    }

    const removed = await tollgate(['user', 'remove', 'alice', '--users-file', usersFile]);
    expect(removed.code).toBe(0);
    expect(readFileSync(usersFile, 'utf8')).not.toMatch(/alice/);
    const again = await tollgate(['user', 'remove', 'alice', '--users-file', usersFile]);
    expect(again.code).toBe(1);
  }, 90_000);
});
