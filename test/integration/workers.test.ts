import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { type Origin, startHttpOrigin } from './support/origins';
import { tempDir } from './support/pki';
import { run } from './support/run';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

function proxiedGet(proxyPort: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // A new connection each time (no agent), so the cluster spreads them over the workers.
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, agent: false, headers: { host: new URL(url).host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

let origin: Origin;

beforeAll(async () => {
  const build = await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json')], { timeoutMs: 60_000 });
  expect(build.stderr + build.stdout.toString()).toBe('');
  origin = await startHttpOrigin('origin.test');
}, 70_000);

afterAll(() => origin.close());

test('workers: 2 runs two gateway processes on one listener, one CA, one audit file with whole lines', async () => {
  const dir = tempDir('workers');
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'policies', 'p.yaml'), `rules:\n  - match: origin.test\n    ports: [${origin.port}]\n    action: inspect\n`);
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'tollgate.yaml'),
    [
      'workers: 2',
      `listen:\n  explicit: 127.0.0.1:${port}`,
      'policies: policies',
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      'audit:\n  file: audit.ndjson',
      'pinning:\n  state_file: null',
      'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [MAIN, '--config', path.join(dir, 'tollgate.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    // Both workers listening: two "listening" lines (bounded wait).
    const deadline = Date.now() + 20_000;
    while ((stdout.match(/"msg":"listening"/g) ?? []).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((stdout.match(/"msg":"listening"/g) ?? []).length).toBe(2);
    expect(childrenOf(child.pid!)).toHaveLength(2);
    // The CA was created once, by the primary, before the workers started.
    expect((stdout.match(/install this CA certificate/g) ?? []).length).toBe(1);

    const count = 40;
    const statuses = await Promise.all(Array.from({ length: count }, (_, i) => proxiedGet(port, `http://origin.test:${origin.port}/hello?i=${i}`)));
    expect(statuses).toEqual(Array(count).fill(200));
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  const lines = readFileSync(path.join(dir, 'audit.ndjson'), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const records = lines.map((l) => JSON.parse(l) as { type: string; path?: string });
  const requests = records.filter((r) => r.type === 'request');
  expect(requests).toHaveLength(40);
  expect(new Set(requests.map((r) => r.path)).size).toBe(40);
}, 60_000);
