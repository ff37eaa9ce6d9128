import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { buildCli } from './support/build';
import { curl, run } from './support/run';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';

let MAIN = '';

beforeAll(async () => {
  MAIN = await buildCli('lifecycle');
}, 100_000);

interface Running {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dir: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function auditLines(dir: string): Record<string, unknown>[] {
  const file = path.join(dir, 'audit.ndjson');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function setup(origin: Origin, policy: string, extra = ''): string {
  const dir = tempDir('life');
  mkdirSync(path.join(dir, 'p'));
  writeFileSync(path.join(dir, 'p/a.yaml'), policy);
  writeFileSync(
    path.join(dir, 'tollgate.yaml'),
    [
      'listen:\n  explicit: 127.0.0.1:0',
      'policies: p',
      `allowed_ports:\n  http: [${origin.port}]`,
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n    other.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      'audit:\n  file: audit.ndjson',
      'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
      extra,
    ].join('\n'),
  );
  return dir;
}

/** Spawns the CLI and resolves once it logged its bound port (or `waitFor` matched). */
function start(dir: string, waitFor = '"msg":"listening"'): Promise<Running> {
  const child = spawn(process.execPath, [MAIN, '--config', path.join(dir, 'tollgate.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let out = '';
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line && out.includes(waitFor)) {
        clearTimeout(timer);
        resolve({ child, port: (JSON.parse(line) as { port: number }).port, dir, output: () => out, exited });
      }
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('lifecycle', () => {
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('life');
  });

  afterAll(async () => {
    await origin.close();
  });

  const SPLICE_ORIGIN = 'rules:\n  - match: origin.test\n    action: splice\n';

  test('SIGTERM drains: stops accepting, lets a slow in-flight request finish, writes its audit record, exits 0', async () => {
    const dir = setup(origin, SPLICE_ORIGIN, 'limits:\n  shutdown_grace: 8s');
    const gw = await start(dir);
    const before = origin.seen.length;
    const slow = curl(['-x', `http://127.0.0.1:${gw.port}`, `http://origin.test:${origin.port}/slow?ms=1500`]);
    for (let i = 0; i < 200 && origin.seen.length === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(origin.seen.length).toBe(before + 1);
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(await canConnect(gw.port)).toBe(false);
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.body).toBe('slow\n');
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(6000);
    const requests = auditLines(dir).filter((r) => r.type === 'request' && String(r.path).startsWith('/slow'));
    expect(requests).toHaveLength(1);
    expect(requests[0]!.status).toBe(200);
    expect(gw.output()).toMatch(/"msg":"gateway stopped"/);
  });

  test('SIGTERM after limits.shutdown_grace cuts what is left and still exits 0', async () => {
    const dir = setup(origin, SPLICE_ORIGIN, 'limits:\n  shutdown_grace: 300ms');
    const gw = await start(dir);
    const slow = curl(['-x', `http://127.0.0.1:${gw.port}`, `http://origin.test:${origin.port}/slow?ms=5000`]);
    await new Promise((r) => setTimeout(r, 300));
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(3000);
    expect((await slow).status).not.toBe(200);
  });

  test('SIGTERM right after the listener is bound (before start-up finished) still drains and exits 0', async () => {
    const dir = setup(origin, SPLICE_ORIGIN);
    for (let i = 0; i < 3; i++) {
      const gw = await start(dir);
      gw.child.kill('SIGTERM');
      expect(await gw.exited).toEqual({ code: 0, signal: null });
    }
  });

  test('SIGHUP reloads the policy', async () => {
    const dir = setup(origin, SPLICE_ORIGIN);
    const gw = await start(dir, '"msg":"policy loaded"');
    try {
      const url = `http://other.test:${origin.port}/hello`;
      expect((await curl(['-x', `http://127.0.0.1:${gw.port}`, url])).status).toBe(403);
      writeFileSync(path.join(dir, 'p/a.yaml'), `${SPLICE_ORIGIN}  - match: other.test\n    action: splice\n`);
      gw.child.kill('SIGHUP');
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await curl(['-x', `http://127.0.0.1:${gw.port}`, url])).status;
      }
      expect(status).toBe(200);
      expect(gw.output()).toMatch(/"msg":"policy reloaded"/);
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
  });

  /**
   * What a crash loses (sink.ts): the records of the event-loop turn it happens in. Records
   * accepted in earlier turns are written and survive a SIGKILL; those of the killing turn are
   * not yet written.
   */
  const crash = async (killInSameTurn: boolean): Promise<string[]> => {
    const dir = tempDir('crash');
    const file = path.join(dir, 'audit.ndjson');
    const sink = path.join(path.dirname(MAIN), 'audit/sink.js');
    const script = [
      `const { NdjsonAuditSink } = require(${JSON.stringify(sink)});`,
      `const sink = NdjsonAuditSink.open(${JSON.stringify(file)}, (err) => { throw err; });`,
      "for (let i = 0; i < 500; i++) sink.write({ type: 'connection', flow_id: String(i) });",
      // No flush, no close: the process dies as a crash would kill it.
      killInSameTurn ? "process.kill(process.pid, 'SIGKILL');" : "setImmediate(() => setImmediate(() => process.kill(process.pid, 'SIGKILL')));",
    ].join('\n');
    const result = await run(process.execPath, ['-e', script]);
    expect(result.signal).toBe('SIGKILL');
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  };

  test('audit records accepted in an earlier event-loop turn survive a SIGKILL', async () => {
    const lines = await crash(false);
    expect(lines).toHaveLength(500);
    expect(JSON.parse(lines[499]!)).toEqual({ type: 'connection', flow_id: '499' });
  });

  test('audit records of the turn a SIGKILL happens in are the ones a crash can lose', async () => {
    expect(await crash(true)).toEqual([]);
  });

  test('`tollgate check | head -1` ends quietly (EPIPE is not a crash)', async () => {
    const dir = setup(origin, Array.from({ length: 3000 }, (_, i) => `${i === 0 ? 'rules:\n' : ''}  - match: host${i}.example\n    action: deny\n`).join(''));
    const result = await run('sh', ['-c', `"${process.execPath}" "${MAIN}" check --config "${path.join(dir, 'tollgate.yaml')}" | head -1`]);
    expect(result.stdout.toString()).toMatch(/^configuration .*: ok\n/);
    expect(result.stderr).toBe('');
  });
});
