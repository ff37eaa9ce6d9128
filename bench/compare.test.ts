import { type BenchReportFile, compareRuns } from './compare';
import type { Row, ScenarioResult } from './scenarios';

function row(variant: string, metrics: Record<string, number>): Row {
  return { variant, metrics: Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, { median: v, min: v, max: v }])), ratios: {} } as Row;
}

function scenario(rows: Row[], skipped_reason?: string): ScenarioResult {
  return { title: 't', headline: 'req_s', rows, skipped: [], notes: [], ...(skipped_reason ? { skipped_reason } : {}) };
}

function report(scenarios: Record<string, ScenarioResult>): BenchReportFile {
  return { date: '2026-12-01T00:00:00Z', mode: 'full', scenarios };
}

describe('bench --compare', () => {
  const before = report({
    e_plain_http: scenario([row('relay', { req_s: 15000, cpu_ms_per_req: 0.04 }), row('tollgate', { req_s: 5000, cpu_ms_per_req: 0.2 }), row('squid', { req_s: 9000, cpu_ms_per_req: 0.1 })]),
    a_bulk: scenario([row('tollgate splice', { mb_s: 120, cpu_s_per_gb: 2.0 }), row('tollgate inspect', { mb_s: 120, cpu_s_per_gb: 5.0 })]),
    c_new_tunnels: scenario([row('tollgate inspect', { tunnels_s: 200, cpu_ms_per_tunnel: 3 })]),
  });

  test('a CPU-per-unit rise over 15% of a tollgate row is a regression; within 15% is not', () => {
    const after = report({
      e_plain_http: scenario([row('relay', { req_s: 15000, cpu_ms_per_req: 0.04 }), row('tollgate', { req_s: 5000, cpu_ms_per_req: 0.24 }), row('squid', { req_s: 9000, cpu_ms_per_req: 0.1 })]),
      a_bulk: scenario([row('tollgate splice', { mb_s: 120, cpu_s_per_gb: 2.2 }), row('tollgate inspect', { mb_s: 120, cpu_s_per_gb: 4.0 })]),
      c_new_tunnels: scenario([row('tollgate inspect', { tunnels_s: 200, cpu_ms_per_tunnel: 3.6 })]),
    });
    const { regressions, lines } = compareRuns(after, before);
    expect(regressions.map((r) => `${r.scenario}/${r.variant}/${r.metric}`).sort()).toEqual(['c_new_tunnels/tollgate inspect/cpu_ms_per_tunnel', 'e_plain_http/tollgate/cpu_ms_per_req']);
    expect(regressions.find((r) => r.scenario === 'e_plain_http')?.ratio).toBeCloseTo(1.2, 5);
    expect(lines).toContain('  tollgate: req_s 5000 -> 5000 (+0%), cpu_ms_per_req 0.200 -> 0.240 (+20%) REGRESSION');
    expect(lines).toContain('  tollgate splice: mb_s 120.0 -> 120.0 (+0%), cpu_s_per_gb 2.00 -> 2.20 (+10%)');
    expect(lines.at(-1)).toMatch(/^2 CPU-per-unit regression\(s\): /);
  });

  test('peers, baselines and throughput are shown but never flagged', () => {
    const after = report({
      e_plain_http: scenario([row('relay', { req_s: 7000, cpu_ms_per_req: 0.08 }), row('tollgate', { req_s: 2000, cpu_ms_per_req: 0.2 }), row('squid', { req_s: 9000, cpu_ms_per_req: 0.3 })]),
    });
    const { regressions, lines } = compareRuns(after, before);
    expect(regressions).toEqual([]);
    expect(lines).toContain('  relay: req_s 15000 -> 7000 (-53%), cpu_ms_per_req 0.040 -> 0.080 (+100%)');
    expect(lines.at(-1)).toBe('no CPU-per-unit regression over the threshold');
  });

  test('rows and scenarios present in one run only are named, not dropped', () => {
    const after = report({
      e_plain_http: scenario([row('tollgate', { req_s: 5000, cpu_ms_per_req: 0.2 }), row('haproxy', { req_s: 1, cpu_ms_per_req: 1 })]),
      a_bulk: scenario([], 'not selected (--only)'),
      f_cache: scenario([row('tollgate inspect x32 hit', { req_s: 7000, cpu_ms_per_req: 0.15 })]),
    });
    const { lines } = compareRuns(after, before);
    expect(lines).toEqual(
      expect.arrayContaining([
        '  haproxy: new in this run',
        '  relay: only in the earlier run',
        '  squid: only in the earlier run',
        'a_bulk: not run now (not selected (--only))',
        'c_new_tunnels: not run now (absent)',
        'f_cache: not in the earlier run',
      ]),
    );
  });
});
