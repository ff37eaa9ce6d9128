import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchReportFile, compareRuns } from './compare';
import { createBenchPki } from './pki';
import { startPeers } from './peers';
import { formatScenario } from './report';
import { type BenchContext, type BenchSizes, type ScenarioResult, type Variant, bulkDownload, cacheHits, idleTunnels, keepAliveRequests, newNames, newTunnels, plainHttp } from './scenarios';
import { NEW_NAME_SUFFIX, ORIGIN_NAME, type OriginPorts, type Subject, direct, startJsonChild, startRelay, startTollgate, stopChild } from './subjects';

/**
 * `npm run bench [-- --quick | --tiny] [--peers] [--out FILE] [--compare FILE]`: starts a local
 * origin, the baselines, tollgate and (with --peers) the peer proxies on loopback, runs scenarios
 * (a)-(h) and prints a table; the JSON goes to bench/results/<date>.json (or --out). With
 * --compare, every figure is printed beside the same figure of that earlier run and the exit
 * code is 1 when a CPU-per-unit figure of tollgate rose by more than 15% (see compare.ts).
 * `--compare OLD --results NEW` compares two saved runs without running anything.
 */
const SIZES: Record<'full' | 'quick' | 'tiny', BenchSizes> = {
  full: { reps: 3, bulkBytes: 128 * 2 ** 20, durationMs: 2000, manyTunnels: 32, newTunnelConcurrency: 8, newNameSamples: 20, idleCounts: [1000, 10000], settleMs: 1000, idleBudgetMs: 60_000 },
  quick: { reps: 3, bulkBytes: 16 * 2 ** 20, durationMs: 300, manyTunnels: 32, newTunnelConcurrency: 8, newNameSamples: 5, idleCounts: [300], settleMs: 300, idleBudgetMs: 15_000 },
  tiny: { reps: 1, bulkBytes: 2 * 2 ** 20, durationMs: 100, manyTunnels: 4, newTunnelConcurrency: 2, newNameSamples: 2, idleCounts: [20], settleMs: 100, idleBudgetMs: 10_000 },
};

interface Args {
  readonly mode: keyof typeof SIZES;
  readonly peers: boolean;
  readonly out: string | null;
  readonly only: Set<string> | null;
  readonly compare: string | null;
  /** Compare this saved run instead of running the bench. */
  readonly results: string | null;
  /** Only these proxy variants (by label, e.g. `tollgate splice`), besides the baselines: for a profile of one path. */
  readonly variants: Set<string> | null;
}

const USAGE = "usage: npm run bench -- [--quick|--tiny] [--peers] [--only a,b,...] [--variants 'tollgate splice,...'] [--out FILE] [--compare FILE [--results FILE]]";

function parseArgs(argv: readonly string[]): Args {
  let mode: Args['mode'] = 'full';
  let peers = false;
  let out: string | null = null;
  let only: Set<string> | null = null;
  let compare: string | null = null;
  let results: string | null = null;
  let variants: Set<string> | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') mode = 'quick';
    else if (arg === '--tiny') mode = 'tiny';
    else if (arg === '--peers') peers = true;
    else if (arg === '--out') out = argv[++i] ?? null;
    else if (arg === '--only') only = new Set((argv[++i] ?? '').split(','));
    else if (arg === '--compare') compare = argv[++i] ?? null;
    else if (arg === '--results') results = argv[++i] ?? null;
    else if (arg === '--variants') variants = new Set((argv[++i] ?? '').split(','));
    else throw new Error(`unknown argument ${arg}; ${USAGE}`);
  }
  if (results !== null && compare === null) throw new Error(`--results needs --compare; ${USAGE}`);
  return { mode, peers, out, only, compare, results, variants };
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavg_at_start: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

export const SCENARIO_KEYS = ['a_bulk', 'b_keepalive', 'c_new_tunnels', 'd_new_names', 'e_plain_http', 'f_cache', 'g_idle_tunnels', 'h_workers'] as const;

function skippedScenario(title: string, reason: string): ScenarioResult {
  return { title, headline: null, rows: [], skipped: [], skipped_reason: reason, notes: [] };
}

function readReport(file: string): BenchReportFile {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<BenchReportFile>;
  if (typeof parsed.scenarios !== 'object' || parsed.scenarios === null) throw new Error(`${file} is not a bench result (no "scenarios")`);
  return parsed as BenchReportFile;
}

/** Prints the comparison; a regression makes the exit code 1. */
function printComparison(current: BenchReportFile, baselineFile: string): void {
  const { lines, regressions } = compareRuns(current, readReport(baselineFile));
  process.stdout.write(`\n${lines.join('\n')}\n`);
  if (regressions.length > 0) process.exitCode = 1;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.compare !== null && args.results !== null) {
    printComparison(readReport(args.results), args.compare);
    return;
  }
  // A wrong path fails now, not after minutes of measuring.
  if (args.compare !== null) readReport(args.compare);
  const sizes = SIZES[args.mode];
  const distDir = path.resolve(__dirname, '..');
  const repoDir = path.resolve(distDir, '..');
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-'));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const started = Date.now();
  const stops: (() => Promise<void>)[] = [];
  // Ctrl-C or a kill still stops the origin, the relay, tollgate and the peers.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void Promise.all(stops.map((stop) => stop().catch(() => undefined))).then(() => process.exit(130));
    });
  }
  try {
    // Every variant of (d) takes its own fresh names: up to four variants.
    const totalNames = 4 * sizes.reps * sizes.newNameSamples + 8;
    const freshNames = Array.from({ length: totalNames }, (_, i) => `n${i}.${NEW_NAME_SUFFIX}`);
    const pki = createBenchPki([ORIGIN_NAME, `*.${NEW_NAME_SUFFIX}`]);
    const originCaFile = path.join(workDir, 'bench-ca.pem');
    writeFileSync(originCaFile, pki.caPem);
    const origin = await startJsonChild<OriginPorts>(path.join(distDir, 'bench/children/origin.js'), { BENCH_ORIGIN_CERT: pki.originCertPem, BENCH_ORIGIN_KEY: pki.originKeyPem });
    stops.push(() => stopChild(origin.child));
    const ports = origin.info;
    const relay = await startRelay(distDir);
    stops.push(() => relay.stop());
    const tollgate = await startTollgate({ distDir, workDir, originCaFile, ports, names: freshNames });
    stops.push(() => tollgate.stop());
    const peers: Subject[] = [];
    const peerNotes: string[] = [];
    if (args.peers) {
      const started = await startPeers({ workDir, repoDir, distDir, originCaFile, ports, names: freshNames, log });
      peers.push(...started.subjects);
      peerNotes.push(...started.notes);
      for (const peer of started.subjects) stops.push(() => peer.stop());
    } else {
      peerNotes.push('peers not run (npm run bench -- --peers)');
    }
    for (const note of peerNotes) log(`peers: ${note}`);
    const ctx: BenchContext = { sizes, ports, originCa: pki.caPem, freshNames, log };

    const baselines: Variant[] = [
      { label: 'direct', subject: direct, mode: 'none' },
      { label: 'relay', subject: relay, mode: 'none' },
    ];
    const spliced = (s: Subject): Variant => ({ label: `${s.name} splice`, subject: s, mode: 'splice' });
    const inspected = (s: Subject): Variant => ({ label: `${s.name} ${s.name === 'tollgate' ? 'inspect' : 'bump'}`, subject: s, mode: 'inspect' });
    const subjects = [tollgate, ...peers];
    // --variants narrows every scenario to the named proxy variants (the baselines stay), so a
    // --cpu-prof of the gateway holds one path only.
    const wantedVariants = args.variants;
    const picked = (variants: Variant[]): Variant[] => (wantedVariants === null ? variants : variants.filter((v) => baselines.includes(v) || wantedVariants.has(v.label)));
    const tunnelVariants = picked([...baselines, ...subjects.flatMap((s) => [...(s.can.splice ? [spliced(s)] : []), ...(s.can.inspect ? [inspected(s)] : [])])]);
    const inspectVariants = picked([...baselines, ...subjects.filter((s) => s.can.inspect).map(inspected)]);
    const wanted = (key: string): boolean => args.only === null || args.only.has(key) || args.only.has(key[0]!);

    const results: Record<string, ScenarioResult> = {};
    const run = async (key: (typeof SCENARIO_KEYS)[number], body: () => Promise<ScenarioResult>): Promise<void> => {
      if (!wanted(key)) {
        results[key] = skippedScenario(key, 'not selected (--only)');
        return;
      }
      log(`running ${key} ...`);
      const t0 = Date.now();
      results[key] = await body();
      log(`${formatScenario(results[key]!)}\n  (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    };
    // Idle-tunnel memory first, while every process is as fresh as after a start: a heap grown
    // by earlier load is not returned to the OS and would be counted against the tunnels.
    // tollgate gets a gateway process of its own for (g): 10,000 tunnels leave a heap that is
    // not returned and would slow every later scenario (full GCs of a large heap).
    await run('g_idle_tunnels', async () => {
      const idle = await startTollgate({ distDir, workDir, originCaFile, ports, names: [], label: 'tollgate-idle', name: 'tollgate' });
      try {
        const idleSubjects = [idle, ...peers];
        return await idleTunnels(
          [{ label: 'relay splice', subject: relay, mode: 'splice' }, ...idleSubjects.flatMap((s) => [...(s.can.splice ? [spliced(s)] : []), ...(s.can.inspect ? [inspected(s)] : [])])],
          ctx,
        );
      } finally {
        await idle.stop();
      }
    });
    await run('a_bulk', () => bulkDownload(tunnelVariants, ctx));
    await run('b_keepalive', () => keepAliveRequests(inspectVariants, ctx, [1, sizes.manyTunnels]));
    await run('c_new_tunnels', () => newTunnels(tunnelVariants, ctx));
    await run('d_new_names', () => newNames([{ label: 'direct', subject: direct, mode: 'none' }, ...subjects.filter((s) => s.can.inspect && s.can.manyNames).map(inspected)], ctx));
    await run('e_plain_http', () => plainHttp(picked([...baselines, ...subjects.filter((s) => s.can.plainHttp).map((s) => ({ label: s.name, subject: s, mode: 'none' as const }))]), ctx));
    // Only subjects with an HTTP cache: mitmproxy and http-mitm-proxy have none (their (f) would be (b)).
    await run('f_cache', () => cacheHits([...baselines, ...subjects.filter((s) => s.can.inspect && s.can.cache).map(inspected)], ctx));
    await run('h_workers', async () => {
      const title = `(h) 1 KiB keep-alive requests through ${sizes.manyTunnels} inspected tunnels, 1 worker vs all cores`;
      const cores = os.availableParallelism();
      let multi: Subject;
      try {
        multi = await startTollgate({ distDir, workDir, originCaFile, ports, names: [], workers: 'auto', label: 'tollgate-workers' });
      } catch (err) {
        return skippedScenario(title, `needs \`workers:\` (multi-process gateway): ${(err as Error).message}`);
      }
      stops.push(() => multi.stop());
      const result = await keepAliveRequests(
        [...baselines, { label: 'tollgate 1 worker', subject: tollgate, mode: 'inspect' }, { label: `tollgate ${cores} workers`, subject: multi, mode: 'inspect' }],
        ctx,
        [sizes.manyTunnels],
        title,
      );
      const one = result.rows.find((r) => r.variant.startsWith('tollgate 1 worker'))?.metrics.req_s?.median;
      const all = result.rows.find((r) => r.variant.startsWith(`tollgate ${cores} workers`))?.metrics.req_s?.median;
      if (one && all) result.notes.push(`${cores} workers / 1 worker = ${(all / one).toFixed(2)} (req/s medians)`);
      return result;
    });

    const report = {
      date: new Date().toISOString(),
      mode: args.mode,
      sizes,
      machine: machine(),
      duration_s: Math.round((Date.now() - started) / 1000),
      peers: peerNotes,
      note: 'the machine is shared and noisy: compare ratios to direct and relay measured in the same run, not absolute figures',
      scenarios: Object.fromEntries(SCENARIO_KEYS.filter((key) => results[key]).map((key) => [key, results[key]!])),
    };
    const out = args.out ?? path.join(repoDir, 'bench', 'results', `${report.date.slice(0, 10)}${args.mode === 'full' ? '' : `-${args.mode}`}.json`);
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`tollgate bench (${args.mode}, ${sizes.reps} repetitions; ${String(report.machine.cpu)}, ${String(report.machine.cores)} cores, Node ${process.version})\n\n`);
    for (const key of SCENARIO_KEYS) if (results[key]) process.stdout.write(`${formatScenario(results[key]!)}\n\n`);
    process.stdout.write(`peers: ${peerNotes.join('; ')}\nJSON: ${out}\ntook ${report.duration_s} s\n`);
    if (args.compare !== null) printComparison(report, args.compare);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (process.env.BENCH_KEEP) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
