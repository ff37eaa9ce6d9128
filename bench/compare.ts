import type { ScenarioResult } from './scenarios';

/**
 * `npm run bench -- --compare FILE`: every figure of this run beside the same figure of an
 * earlier run (a committed JSON under bench/results/), and a flag on each CPU-per-unit figure
 * that grew by more than the threshold. CPU per unit of work is the steadiest figure on a shared
 * machine; throughput and latency are printed for reading, never flagged, because they move
 * with whatever else the machine runs.
 *
 * Rows are matched by scenario key and variant label. A figure present in one run only is shown
 * as such, never silently dropped. The relay's row is printed like any other and reads as
 * machine drift: when the do-nothing relay got 20% dearer too, a 20% rise of tollgate's figure
 * is probably the machine, not the code.
 */

/** Metrics whose rise is a regression in the work done per unit (lower is better). */
export const CPU_PER_UNIT = new Set(['cpu_ms_per_req', 'cpu_s_per_gb', 'cpu_ms_per_tunnel']);

export interface BenchReportFile {
  readonly date?: string;
  readonly mode?: string;
  readonly scenarios: Readonly<Record<string, ScenarioResult>>;
}

export interface Regression {
  readonly scenario: string;
  readonly variant: string;
  readonly metric: string;
  readonly before: number;
  readonly after: number;
  /** after / before. */
  readonly ratio: number;
}

export interface Comparison {
  readonly lines: string[];
  readonly regressions: Regression[];
}

/** Only the gateway under test is held to the threshold; peers and baselines are context. */
function isTollgate(variant: string): boolean {
  return variant.startsWith('tollgate');
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function change(before: number, after: number): string {
  if (before === 0 || !Number.isFinite(before) || !Number.isFinite(after)) return '';
  const pct = (after / before - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(0)}%`;
}

export function compareRuns(current: BenchReportFile, baseline: BenchReportFile, threshold = 0.15): Comparison {
  const lines: string[] = [`compared with ${baseline.date ?? 'an undated run'} (${baseline.mode ?? '?'} mode); CPU-per-unit rises over ${Math.round(threshold * 100)}% are flagged for tollgate rows`];
  const regressions: Regression[] = [];
  const keys = [...new Set([...Object.keys(current.scenarios), ...Object.keys(baseline.scenarios)])];
  for (const key of keys) {
    const now = current.scenarios[key];
    const then = baseline.scenarios[key];
    if (!now || now.skipped_reason) {
      if (then && !then.skipped_reason) lines.push(`${key}: not run now (${now?.skipped_reason ?? 'absent'})`);
      continue;
    }
    if (!then || then.skipped_reason) {
      lines.push(`${key}: not in the earlier run`);
      continue;
    }
    lines.push(key);
    const earlier = new Map(then.rows.map((row) => [row.variant, row]));
    for (const row of now.rows) {
      const old = earlier.get(row.variant);
      if (!old) {
        lines.push(`  ${row.variant}: new in this run`);
        continue;
      }
      earlier.delete(row.variant);
      const cells: string[] = [];
      for (const [metric, spread] of Object.entries(row.metrics)) {
        const before = old.metrics[metric]?.median;
        if (before === undefined) continue;
        const after = spread.median;
        let flag = '';
        if (CPU_PER_UNIT.has(metric) && isTollgate(row.variant) && before > 0 && after / before > 1 + threshold) {
          regressions.push({ scenario: key, variant: row.variant, metric, before, after, ratio: after / before });
          flag = ' REGRESSION';
        }
        cells.push(`${metric} ${fmt(before)} -> ${fmt(after)} (${change(before, after)})${flag}`);
      }
      lines.push(`  ${row.variant}: ${cells.join(', ')}`);
    }
    for (const gone of earlier.keys()) lines.push(`  ${gone}: only in the earlier run`);
  }
  lines.push(
    regressions.length === 0
      ? 'no CPU-per-unit regression over the threshold'
      : `${regressions.length} CPU-per-unit regression(s): ${regressions.map((r) => `${r.scenario} ${r.variant} ${r.metric} ×${r.ratio.toFixed(2)}`).join('; ')}`,
  );
  return { lines, regressions };
}
