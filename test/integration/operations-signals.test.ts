import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ROOT } from './support/build';
import { buildInstallation, descendants, isAlive, listeningPorts, startGatewayProcess, type RunningGateway } from './support/launcher';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { cleanEnv, run } from './support/run';

/**
 * Operating the gateway as a process: log rotation (rename + SIGHUP, and the shipped logrotate
 * snippet with SIGUSR1), SIGUSR1 never opening Node's inspector, and `npm start` leaving no
 * orphan behind. Everything runs the shipped launcher (bin/tollgate) against a compiled build.
 */

/** Debian installs logrotate in /usr/sbin, which is not on every user's PATH. */
const LOGROTATE = existsSync('/usr/sbin/logrotate') ? '/usr/sbin/logrotate' : 'logrotate';

let launcher = '';
let installRoot = '';

beforeAll(async () => {
  ({ launcher, root: installRoot } = await buildInstallation('operations'));
}, 100_000);

function setup(origin: Origin): string {
  const dir = tempDir('ops');
  mkdirSync(path.join(dir, 'p'));
  writeFileSync(path.join(dir, 'p/a.yaml'), 'rules:\n  - match: origin.test\n    action: splice\n');
  writeFileSync(
    path.join(dir, 'tollgate.yaml'),
    [
      'listen:\n  explicit: 127.0.0.1:0',
      'policies: p',
      `allowed_ports:\n  http: [${origin.port}]`,
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      'audit:\n  file: logs/audit.ndjson',
      'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
      'pinning:\n  state_file: null',
    ].join('\n'),
  );
  return dir;
}

/** One plain request through the explicit proxy (absolute-form), as curl -x would send it. */
function request(proxyPort: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function paths(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { type: string; path?: string })
    .filter((r) => r.type === 'request')
    .map((r) => r.path!);
}

describe('log rotation and signals, through bin/tollgate', () => {
  let origin: Origin;
  let gw: RunningGateway;
  let dir: string;
  let proxyPort: number;

  beforeAll(async () => {
    origin = await startHttpOrigin('ops');
    dir = setup(origin);
    gw = await startGatewayProcess(launcher, ['--config', path.join(dir, 'tollgate.yaml')], { cwd: dir });
    proxyPort = Number((await gw.waitForLog((l) => l.msg === 'listening'))!.port);
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  /** Sends `count` requests, `parallel` at a time, to /r/<label>-<i>; returns the paths sent. */
  async function traffic(label: string, count: number, parallel = 4): Promise<string[]> {
    const sent: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const p = `/hello?r=${label}-${next++}`;
        expect(await request(proxyPort, `http://origin.test:${origin.port}${p}`)).toBe(200);
        sent.push(p);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    return sent;
  }

  test('mv + SIGHUP, then the shipped logrotate snippet (SIGUSR1), with traffic running: every record lands in exactly one file', async () => {
    const audit = path.join(dir, 'logs/audit.ndjson');
    const before = await traffic('a', 20);

    // The reproduction: rename, SIGHUP, while requests keep arriving.
    const during = traffic('b', 40);
    await new Promise((r) => setTimeout(r, 20));
    renameSync(audit, `${audit}.1`);
    gw.child.kill('SIGHUP');
    expect(await gw.waitForLog((l) => l.msg === 'audit file reopened: new records go to a new file' && l.trigger === 'SIGHUP')).not.toBeNull();
    const sentB = await during;
    const after = await traffic('c', 10);
    expect(existsSync(audit)).toBe(true);

    // The shipped snippet, pointed at this file and this process (systemctl is not running here).
    const shipped = readFileSync(path.join(ROOT, 'deploy/logrotate/tollgate'), 'utf8');
    expect(shipped).toMatch(/^\s*postrotate\n\s*systemctl kill --signal=SIGUSR1 --kill-who=main tollgate\.service/m);
    expect(shipped).not.toMatch(/^\s*copytruncate/m);
    const conf = shipped
      .replace('/var/log/tollgate/audit.ndjson', audit)
      .replace(/create 0640 tollgate tollgate/, 'create 0640')
      .replace(/systemctl kill .*$/m, `kill -USR1 ${gw.child.pid}`);
    const confFile = path.join(dir, 'logrotate.conf');
    writeFileSync(confFile, conf, { mode: 0o644 });
    const during2 = traffic('d', 40);
    await new Promise((r) => setTimeout(r, 20));
    const rotated = await run(LOGROTATE, ['-f', '-s', path.join(dir, 'logrotate.state'), confFile], { timeoutMs: 15_000 });
    expect({ code: rotated.code, stderr: rotated.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await gw.waitForLog((l) => l.msg === 'audit file reopened: new records go to a new file' && l.trigger === 'SIGUSR1')).not.toBeNull();
    const sentD = await during2;
    const last = await traffic('e', 10);
    await gw.stop();

    const logs = readdirSync(path.join(dir, 'logs')).sort();
    const dated = logs.find((name) => /^audit\.ndjson-\d{8}$/.test(name));
    expect({ logs, dated: dated !== undefined }).toEqual({ logs: expect.arrayContaining(['audit.ndjson', 'audit.ndjson.1']), dated: true });
    const first = paths(`${audit}.1`);
    const second = paths(path.join(dir, 'logs', dated!));
    const third = paths(audit);
    // None lost, none twice, and each file holds what was sent around its own rotation.
    const all = [...first, ...second, ...third].sort();
    expect(all).toEqual([...before, ...sentB, ...after, ...sentD, ...last].sort());
    expect(first).toEqual(expect.arrayContaining(before));
    expect(second).toEqual(expect.arrayContaining(after));
    expect(third).toEqual(expect.arrayContaining(last));
    expect(third.length).toBeGreaterThan(0);
    // The rotation happened while sentB and sentD were in flight: they may straddle, never vanish.
    expect(gw.stderr()).toBe('');
  }, 60_000);
});

describe('SIGUSR1 never opens an inspector', () => {
  test('control: a plain node process opens one on SIGUSR1 (so the checks below can fail)', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise((r) => setTimeout(r, 400));
    child.kill('SIGUSR1');
    for (let i = 0; i < 100 && !stderr.includes('Debugger listening'); i++) await new Promise((r) => setTimeout(r, 20));
    const ports = listeningPorts(child.pid!);
    child.kill('SIGKILL');
    expect(stderr).toMatch(/Debugger listening on ws:\/\/127\.0\.0\.1:9229\//);
    expect(ports).toContain(9229);
  });

  test("before tollgate's handler is installed, the launcher's node flag leaves the inspector nothing to listen on", async () => {
    const flags = /exec node (--inspect-port=\S+) /.exec(readFileSync(launcher, 'utf8'))?.[1];
    expect(flags).toBe('--inspect-port=0.0.0.1:9229');
    // A process with only the flag and no handler: what Node does during the gateway's first milliseconds.
    const child = spawn(process.execPath, [flags!, '-e', 'setTimeout(() => {}, 5000)'], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise((r) => setTimeout(r, 400));
    child.kill('SIGUSR1');
    for (let i = 0; i < 100 && !stderr.includes('Starting inspector'); i++) await new Promise((r) => setTimeout(r, 20));
    const ports = listeningPorts(child.pid!);
    const alive = isAlive(child.pid!);
    child.kill('SIGKILL');
    expect(stderr).toMatch(/Starting inspector on 0\.0\.0\.1:9229 failed/);
    expect(stderr).not.toMatch(/Debugger listening/);
    expect(ports).toEqual([]);
    expect(alive).toBe(true);
  });

  test('the running gateway answers SIGUSR1 by reopening the audit file, keeps serving, and listens on nothing new', async () => {
    const origin = await startHttpOrigin('usr1');
    const dir = setup(origin);
    const gw = await startGatewayProcess(launcher, ['--config', path.join(dir, 'tollgate.yaml')], { cwd: dir });
    try {
      const proxyPort = Number((await gw.waitForLog((l) => l.msg === 'listening'))!.port);
      const before = listeningPorts(gw.child.pid!);
      expect(before).toEqual([proxyPort]);
      for (let i = 0; i < 3; i++) {
        gw.child.kill('SIGUSR1');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await gw.waitForLog((l) => l.msg === 'audit file reopened' && l.trigger === 'SIGUSR1')).not.toBeNull();
      expect(await request(proxyPort, `http://origin.test:${origin.port}/hello`)).toBe(200);
      expect(listeningPorts(gw.child.pid!)).toEqual(before);
      expect(gw.stderr()).not.toMatch(/Debugger|inspector/i);
      expect(isAlive(gw.child.pid!)).toBe(true);
    } finally {
      await gw.stop();
      await origin.close();
    }
  }, 30_000);

  test('the Dockerfile, the systemd unit and npm start all run the gateway through bin/tollgate', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/app\/bin\/tollgate"\]$/m);
    const unit = readFileSync(path.join(ROOT, 'deploy/systemd/tollgate.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/tollgate\/bin\/tollgate --config \/etc\/tollgate\/tollgate\.yaml$/m);
    expect(unit).not.toMatch(/^ExecStart=.*\bnode\b/m);
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toMatch(/&& exec bin\/tollgate$/);
  });
});

describe('audit.file: stdout', () => {
  test('a denied CONNECT prints its record once, not again inside the operational log', async () => {
    const origin = await startHttpOrigin('stdout');
    const dir = setup(origin);
    writeFileSync(path.join(dir, 'tollgate.yaml'), readFileSync(path.join(dir, 'tollgate.yaml'), 'utf8').replace('file: logs/audit.ndjson', 'file: stdout'));
    const gw = await startGatewayProcess(launcher, ['--config', path.join(dir, 'tollgate.yaml')], { cwd: dir });
    try {
      const proxyPort = Number((await gw.waitForLog((l) => l.msg === 'listening'))!.port);
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: 'denied.test:443' });
        req.on('connect', (res, socket) => {
          socket.destroy();
          resolve(res.statusCode ?? 0);
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(403);
      const record = await gw.waitForLog((l) => l.type === 'connection' && l.target === 'denied.test:443');
      expect(record).toMatchObject({ action: 'deny', close: 'refused' });
      await gw.stop();
      const mentions = gw.logs().filter((l) => JSON.stringify(l).includes(String(record!.flow_id)));
      // The record itself, and log lines that only name the flow (never the record again).
      expect(mentions.filter((l) => l.type === 'connection')).toHaveLength(1);
      expect(mentions.filter((l) => 'record' in l)).toEqual([]);
    } finally {
      await gw.stop();
      await origin.close();
    }
  }, 30_000);
});

describe('npm start', () => {
  test('SIGTERM to npm reaches the gateway: it drains and nothing is left running', async () => {
    const origin = await startHttpOrigin('npm-start');
    const dir = setup(origin);
    // A project holding the real start script, the launcher and the build (no rebuild: another
    // test file may be compiling dist/ right now).
    const project = tempDir('npm-start');
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'tollgate-start-test', private: true, scripts: { build: 'true', start: scripts.start } }));
    mkdirSync(path.join(project, 'bin'));
    symlinkSync(launcher, path.join(project, 'bin', 'tollgate'));
    symlinkSync(path.join(installRoot, 'dist'), path.join(project, 'dist'));
    const gw = await startGatewayProcess('npm', ['start', '--silent', '--', '--config', path.join(dir, 'tollgate.yaml')], { cwd: project });
    try {
      const npmPid = gw.child.pid!;
      const gateway = descendants(npmPid).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('main.js'));
      expect(gateway).toHaveLength(1);
      // exec: no shell between npm and node, so npm's signal forwarding reaches the gateway.
      expect(readFileSync(`/proc/${gateway[0]}/stat`, 'utf8')).toMatch(new RegExp(`^\\d+ \\(node\\) \\S+ ${npmPid} `));
      const result = await gw.stop();
      expect(result.code === 0 || result.signal === 'SIGTERM').toBe(true);
      expect(gw.logs().some((l) => l.msg === 'gateway stopped')).toBe(true);
      for (let i = 0; i < 100 && isAlive(gateway[0]!); i++) await new Promise((r) => setTimeout(r, 50));
      expect(isAlive(gateway[0]!)).toBe(false);
    } finally {
      await gw.stop();
      await origin.close();
    }
  }, 30_000);
});
