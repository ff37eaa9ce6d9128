import { readFileSync } from 'node:fs';

/**
 * `node dist/bench/profile.js [--skip-ms N] FILE.cpuprofile [...]`: where a gateway profile's
 * busy time went, by stage. `--skip-ms` leaves out the first N ms (start-up: module loading and
 * compiling). Take the profile with one path only, e.g.
 *
 *   BENCH_GATEWAY_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=prof" \
 *     node dist/bench/run.js --only e --variants tollgate
 *
 * Self time of every sample is charged to a stage: tollgate's own folders (`src/<folder>`),
 * undici, other dependencies, Node's own layers (streams, HTTP, TLS, net, events, timers), the
 * native calls that move bytes (socket writes and reads: the syscalls, and on loopback the
 * receiver's TCP work too), garbage collection, and `(program)` (native work V8 cannot place:
 * TLS record crypto, libuv, the HTTP parser). Idle time is left out; percentages are of busy time.
 */

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const NODE_LAYERS: readonly [RegExp, string][] = [
  [/^node:internal\/streams\//, 'node: streams'],
  [/^node:(_http_|http$|internal\/http)/, 'node: http'],
  [/^node:(_tls_|tls$|internal\/tls)/, 'node: tls'],
  [/^node:(net$|internal\/net|internal\/stream_base_commons)/, 'node: net'],
  [/^node:(events$|internal\/event_target)/, 'node: events'],
  [/^node:(timers$|internal\/timers)/, 'node: timers'],
  [/^node:internal\/process\/task_queues/, 'node: microtasks and nextTick'],
  [/^node:(buffer$|internal\/buffer)/, 'node: buffers'],
];

/** The stage a sample's own frame belongs to. */
export function stageOf(functionName: string, url: string): string | null {
  if (functionName === '(idle)') return null;
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)' || functionName === '(root)') return '(program): native, unattributed';
  const src = /\/dist\/src\/([^/]+)\//.exec(url) ?? /\/src\/([^/]+)\/[^/]+\.[jt]s$/.exec(url);
  if (src && !url.includes('/node_modules/')) return `tollgate: ${src[1]}`;
  if (/\/dist\/src\/[^/]+\.js$/.test(url)) return 'tollgate: (top level)';
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return dep[1] === 'undici' ? 'undici' : `dependency: ${dep[1]}`;
  if (url === '') {
    if (/^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString|writeUcs2String|writeGeneric|writevGeneric|shutdown)$/.test(functionName)) return 'native: socket writes';
    if (/^(readStart|readStop|onStreamRead)$/.test(functionName)) return 'native: socket reads';
    return `native: ${functionName || '(anonymous)'}`;
  }
  for (const [pattern, stage] of NODE_LAYERS) if (pattern.test(url)) return stage;
  if (url.startsWith('node:')) return 'node: other';
  return 'other';
}

export function summarise(profile: CpuProfile, skipMs = 0): { busyMs: number; stages: [string, number][] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let busy = 0;
  let elapsedUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    elapsedUs += profile.timeDeltas[i] ?? 0;
    if (elapsedUs < skipMs * 1000) continue;
    const node = byId.get(profile.samples[i]!);
    if (!node) continue;
    const stage = stageOf(node.callFrame.functionName, node.callFrame.url);
    if (stage === null) continue;
    const us = profile.timeDeltas[i] ?? 0;
    busy += us;
    totals.set(stage, (totals.get(stage) ?? 0) + us);
  }
  return { busyMs: busy / 1000, stages: [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([stage, us]) => [stage, us / 1000]) };
}

function main(): void {
  const args = process.argv.slice(2);
  let skipMs = 0;
  if (args[0] === '--skip-ms') {
    skipMs = Number(args[1]);
    args.splice(0, 2);
  }
  const files = args;
  if (files.length === 0 || !Number.isFinite(skipMs)) {
    process.stderr.write('usage: node dist/bench/profile.js [--skip-ms N] FILE.cpuprofile [...]\n');
    process.exitCode = 2;
    return;
  }
  for (const file of files) {
    const { busyMs, stages } = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, skipMs);
    process.stdout.write(`${file}: ${busyMs.toFixed(0)} ms busy\n`);
    for (const [stage, ms] of stages) {
      const pct = (100 * ms) / busyMs;
      if (pct >= 0.5) process.stdout.write(`  ${pct.toFixed(1).padStart(5)}%  ${stage}\n`);
    }
  }
}

if (require.main === module) main();
