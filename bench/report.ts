import type { ScenarioResult } from './scenarios';

function num(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
}

/** A scenario as a text table: the headline as median (min–max), other metrics as medians, then ratios. */
export function formatScenario(scenario: ScenarioResult): string {
  const lines = [scenario.title];
  if (scenario.skipped_reason) {
    lines.push(`  skipped: ${scenario.skipped_reason}`);
    return lines.join('\n');
  }
  const metricNames = [...new Set(scenario.rows.flatMap((r) => Object.keys(r.metrics)))];
  const ordered = scenario.headline ? [scenario.headline, ...metricNames.filter((m) => m !== scenario.headline)] : metricNames;
  const header = ['', ...ordered.map((m) => (m === scenario.headline ? `${m} median (min-max)` : m)), ...(scenario.headline ? ['/direct', '/relay'] : [])];
  const body = scenario.rows.map((row) => [
    row.variant,
    ...ordered.map((m) => {
      const s = row.metrics[m];
      if (!s) return '-';
      return m === scenario.headline ? `${num(s.median)} (${num(s.min)}-${num(s.max)})` : num(s.median);
    }),
    ...(scenario.headline ? [row.ratios.direct === undefined ? '-' : num(row.ratios.direct), row.ratios.relay === undefined ? '-' : num(row.ratios.relay)] : []),
  ]);
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...body.map((r) => r[i]!.length)));
  lines.push(`  ${pad(header, widths)}`);
  for (const row of body) lines.push(`  ${pad(row, widths)}`);
  for (const skip of scenario.skipped) lines.push(`  skipped ${skip.variant}: ${skip.reason}`);
  for (const note of scenario.notes) lines.push(`  note: ${note}`);
  return lines.join('\n');
}
