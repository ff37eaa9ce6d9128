import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../integration/support/pki';

/**
 * Smoke test of `npm run bench`: builds, runs the harness in its tiny mode (one repetition,
 * small sizes, no peers) against the real gateway, origin and relay on loopback, and checks the
 * JSON has every scenario with numbers or an explicit reason it was skipped. No thresholds:
 * figures on a shared machine say nothing in a unit test.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const SCENARIOS = ['a_bulk', 'b_keepalive', 'c_new_tunnels', 'd_new_names', 'e_plain_http', 'f_cache', 'g_idle_tunnels', 'h_workers'];

function runBounded(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

interface Scenario {
  skipped_reason?: string;
  rows: { variant: string; metrics: Record<string, { median: number; min: number; max: number }> }[];
}

test('npm run bench --tiny produces every scenario with figures or a skip reason', async () => {
  const build = await runBounded(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], 30_000);
  expect(build.code).toBe(0);
  const out = path.join(tempDir('bench'), 'result.json');
  const started = Date.now();
  const bench = await runBounded(process.execPath, ['dist/bench/run.js', '--tiny', '--out', out], 40_000);
  expect({ code: bench.code, stderr: bench.code === 0 ? '' : bench.stderr }).toEqual({ code: 0, stderr: '' });
  expect(Date.now() - started).toBeLessThan(40_000);
  expect(existsSync(out)).toBe(true);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { mode: string; scenarios: Record<string, Scenario> };
  expect(report.mode).toBe('tiny');
  expect(Object.keys(report.scenarios).sort()).toEqual([...SCENARIOS].sort());
  for (const key of SCENARIOS) {
    const scenario = report.scenarios[key]!;
    if (scenario.skipped_reason !== undefined) {
      expect(scenario.skipped_reason.length).toBeGreaterThan(5);
      continue;
    }
    expect(scenario.rows.length).toBeGreaterThan(0);
    for (const row of scenario.rows) {
      for (const spread of Object.values(row.metrics)) expect(Number.isFinite(spread.median)).toBe(true);
    }
  }
  const bulk = report.scenarios.a_bulk!.rows.map((r) => r.variant);
  expect(bulk).toEqual(expect.arrayContaining(['direct', 'relay', 'tollgate splice', 'tollgate inspect']));
  // (f) runs now that the cache is in the build: hits and misses for tollgate (tiny: 4 tunnels).
  expect(report.scenarios.f_cache!.skipped_reason).toBeUndefined();
  expect(report.scenarios.f_cache!.rows.map((r) => r.variant)).toEqual(expect.arrayContaining(['direct x4 hit', 'tollgate inspect x4 hit', 'tollgate inspect x4 miss']));
}, 75_000);
