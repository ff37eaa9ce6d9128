import { describeDlp } from './dlp/compile-dlp';
import { describeHttpRule } from './rules/compile-rules';
import type { CompiledPolicy, Pattern, PolicyRule } from './types';

interface Row {
  readonly rank: number[];
  readonly pattern: Pattern;
  readonly rule: PolicyRule;
}

function labelCount(name: string): number {
  return name.split('.').length;
}

/** Sort key that mirrors match.ts: exact names, longer suffixes, `*.` before `.`, longer prefixes. */
function rankOf(pattern: Pattern, rule: PolicyRule): number[] {
  const ports = rule.ports === null ? 1 : 0;
  switch (pattern.kind) {
    case 'exact':
      return [0, 0, 0, ports];
    case 'subdomains':
      return [1, -labelCount(pattern.suffix), 0, ports];
    case 'domain':
      return [1, -labelCount(pattern.suffix), 1, ports];
    case 'cidr':
      return [2, pattern.family === 'ipv4' ? 0 : 1, -pattern.prefixLength, ports];
  }
}

function compareRows(a: Row, b: Row): number {
  for (let i = 0; i < a.rank.length; i++) {
    const d = (a.rank[i] ?? 0) - (b.rank[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.pattern.text.localeCompare(b.pattern.text);
}

function pad(cells: readonly string[][]): string {
  const widths = cells[0]!.map((_, col) => Math.max(...cells.map((row) => row[col]!.length)));
  return cells.map((row) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]!))).join('  ')).join('\n');
}

/** Who a rule applies to: `everyone`, or its users and groups. */
export function ruleAudience(rule: PolicyRule): string {
  const parts: string[] = [];
  if (rule.users !== null) parts.push(`users: ${[...rule.users].join(',')}`);
  if (rule.groups !== null) parts.push(`groups: ${[...rule.groups].join(',')}`);
  return parts.length === 0 ? 'everyone' : parts.join('; ');
}

/** Every (pattern, rule) pair in the order they are tried: most specific pattern first. */
export function ruleTableRows(policy: CompiledPolicy): readonly { readonly pattern: Pattern; readonly rule: PolicyRule }[] {
  const rows: Row[] = [];
  for (const rule of policy.rules) for (const pattern of rule.patterns) rows.push({ rank: rankOf(pattern, rule), pattern, rule });
  return rows.sort(compareRows);
}

/**
 * The compiled rule table, most specific first: what `tollgate check` prints so a reviewer sees
 * the order in which patterns are tried. WHO shows user and group conditions: a rule for a group
 * next to one for everyone with the same pattern is two rows that both decide. `note` adds a
 * remark to a row (check marks rules no request can reach).
 */
export function formatRuleTable(policy: CompiledPolicy, note: (rule: PolicyRule, pattern: Pattern) => string = () => ''): string {
  const cells = [['PATTERN', 'ACTION', 'PORTS', 'WHO', 'RULE', 'REASON']];
  for (const row of ruleTableRows(policy)) {
    const flags = (row.rule.upstreamInsecure ? ' (upstream_insecure!)' : '') + (row.rule.cache ? '' : ' (no cache)') + note(row.rule, row.pattern);
    cells.push([row.pattern.text, row.rule.action + flags, row.rule.ports === null ? 'allowed_ports' : [...row.rule.ports].join(','), ruleAudience(row.rule), row.rule.id, row.rule.reason ?? '']);
  }
  cells.push(['(anything else)', policy.defaultAction, 'allowed_ports', 'everyone', 'default_action', '']);
  return pad(cells);
}

/** HTTP rules per policy rule, in evaluation order, for `tollgate check`. */
export function formatHttpRules(policy: CompiledPolicy): string {
  const blocks: string[] = [];
  for (const rule of policy.rules) {
    if (rule.http.length === 0 && !rule.dlp) continue;
    const lines = [`${rule.id} (${rule.patterns.map((p) => p.text).join(', ')}):`, ...rule.http.map((h, i) => `  ${i + 1}. ${describeHttpRule(h)}`)];
    // DLP runs over the request body after the request-phase rules let the request through.
    if (rule.dlp) lines.push(`  upload: ${describeDlp(rule.dlp)}`);
    blocks.push(lines.join('\n'));
  }
  return blocks.join('\n');
}
