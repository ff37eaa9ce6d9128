import { readFileSync, readdirSync } from 'node:fs';

/**
 * Process measurements from /proc (Linux): CPU time and resident memory of a proxy and its
 * child processes (Squid runs helpers), so every proxy is measured the same way.
 */
const CLOCK_TICKS_PER_SECOND = 100;

function readStat(pid: number): { ppid: number; cpuTicks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** The process and all its descendants, alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS_PER_SECOND;
}

export function rssBytes(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kib += Number(match?.[1] ?? 0);
    } catch {
      // The process ended: nothing resident.
    }
  }
  return kib * 1024;
}

/** The open-file limit of a process ("Max open files" soft limit). */
export function openFileLimit(pid: number): number {
  try {
    const match = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return Number(match?.[1] ?? 1024);
  } catch {
    return 1024;
  }
}

/** CPU and peak RSS of a process tree over one measured interval. */
export class Meter {
  private readonly pids: number[];
  private readonly cpuAtStart: number;
  private peakRss: number;
  private readonly timer: NodeJS.Timeout;

  constructor(root: number | null, sampleRss = false) {
    this.pids = root === null ? [] : processTree(root);
    this.cpuAtStart = cpuSeconds(this.pids);
    this.peakRss = rssBytes(this.pids);
    this.timer = setInterval(() => {
      if (sampleRss) this.peakRss = Math.max(this.peakRss, rssBytes(this.pids));
    }, 100);
  }

  /** CPU seconds used since the start, and the highest RSS seen. */
  stop(): { cpuSeconds: number; peakRssBytes: number } {
    clearInterval(this.timer);
    this.peakRss = Math.max(this.peakRss, rssBytes(this.pids));
    return { cpuSeconds: cpuSeconds(this.pids) - this.cpuAtStart, peakRssBytes: this.peakRss };
  }
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

/** The p-th percentile (0..100) of a list of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
