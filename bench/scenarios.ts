import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { HttpConnection, type Route, connectTunnel, getRequest, openTls, tcpConnect } from './client';
import { Meter, openFileLimit, percentile, type Spread, spread } from './measure';
import { NEW_NAME_SUFFIX, ORIGIN_NAME, type OriginPorts, SPLICE_HOST, type Subject } from './subjects';

/** Sizes of one bench run; `--quick` and the smoke test shrink them. */
export interface BenchSizes {
  readonly reps: number;
  readonly bulkBytes: number;
  readonly durationMs: number;
  readonly manyTunnels: number;
  readonly newTunnelConcurrency: number;
  readonly newNameSamples: number;
  readonly idleCounts: readonly number[];
  /** Time given to a proxy to settle before and after idle-tunnel measurements. */
  readonly settleMs: number;
  /** Time allowed for opening one set of idle tunnels. */
  readonly idleBudgetMs: number;
}

export type Mode = 'splice' | 'inspect' | 'none';

/** One line of a scenario: a subject in one mode (spliced, inspected, or a baseline). */
export interface Variant {
  readonly label: string;
  readonly subject: Subject;
  readonly mode: Mode;
}

export interface Row {
  readonly variant: string;
  readonly metrics: Record<string, Spread>;
  /** Headline metric divided by the same metric of `direct` and `relay` in this run. */
  ratios: Record<string, number>;
}

export interface ScenarioResult {
  readonly title: string;
  /** The metric ratios are computed on. */
  readonly headline: string | null;
  readonly rows: Row[];
  readonly skipped: { variant: string; reason: string }[];
  /** Set when the whole scenario did not run, with why. */
  skipped_reason?: string;
  readonly notes: string[];
}

export interface BenchContext {
  readonly sizes: BenchSizes;
  readonly ports: OriginPorts;
  readonly originCa: string;
  /** Fresh names for the new-name scenario, known to tollgate's host map. */
  readonly freshNames: string[];
  readonly log: (line: string) => void;
}

function routeFor(variant: Variant, port: number, ctx: BenchContext): Route {
  const { subject, mode } = variant;
  return {
    proxy: subject.proxy,
    // Direct connections go to the address; proxies get the name and resolve it themselves.
    // Spliced tunnels go to the address (no SNI): mitmproxy 8 chooses to ignore a connection by
    // host or SNI only, so splice and inspect must differ by name, not just by port.
    target: { host: !subject.proxy ? '127.0.0.1' : mode === 'splice' ? SPLICE_HOST : ORIGIN_NAME, port },
    ca: mode === 'inspect' ? subject.interceptCa : [ctx.originCa],
  };
}

function tlsPort(variant: Variant, ctx: BenchContext): number {
  return variant.mode === 'splice' ? ctx.ports.spliceTls : ctx.ports.inspectTls;
}

function tlsName(variant: Variant): string {
  return variant.mode === 'splice' ? SPLICE_HOST : ORIGIN_NAME;
}

/** Host header for requests through a variant's tunnel (with the port: it is not 443). */
function hostHeader(variant: Variant, ctx: BenchContext): string {
  return `${tlsName(variant)}:${tlsPort(variant, ctx)}`;
}

async function openHttps(variant: Variant, ctx: BenchContext): Promise<TLSSocket> {
  return openTls(routeFor(variant, tlsPort(variant, ctx), ctx), tlsName(variant));
}

function collect(rows: Map<string, Record<string, number[]>>, variant: string, values: Record<string, number>): void {
  const row = rows.get(variant) ?? {};
  for (const [key, value] of Object.entries(values)) {
    const list = row[key] ?? [];
    list.push(value);
    row[key] = list;
  }
  rows.set(variant, row);
}

function finish(title: string, headline: string | null, samples: Map<string, Record<string, number[]>>, skipped: ScenarioResult['skipped'], notes: string[] = []): ScenarioResult {
  const rows: Row[] = [...samples].map(([variant, metrics]) => ({
    variant,
    metrics: Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, spread(v)])),
    ratios: {},
  }));
  if (headline) {
    // Ratios within groups that share a suffix (" x32", " x1", " x32 hit"): each compared with its own baselines.
    for (const row of rows) {
      const suffix = / x\d+(?: hit| miss)?$/.exec(row.variant)?.[0] ?? '';
      for (const base of ['direct', 'relay']) {
        const baseline = rows.find((r) => r.variant === `${base}${suffix}`);
        const value = row.metrics[headline]?.median;
        const reference = baseline?.metrics[headline]?.median;
        if (value !== undefined && reference) row.ratios[base] = value / reference;
      }
    }
  }
  return { title, headline, rows, skipped, notes };
}

/** Runs `each` for every variant, `reps` times, interleaved so noise hits all variants alike. */
async function repeat(
  variants: readonly Variant[],
  ctx: BenchContext,
  skipped: ScenarioResult['skipped'],
  each: (variant: Variant, rep: number) => Promise<void>,
  reps = ctx.sizes.reps,
): Promise<void> {
  const failed = new Set<string>();
  for (let rep = 0; rep < reps; rep++) {
    for (const variant of variants) {
      if (failed.has(variant.label)) continue;
      try {
        await each(variant, rep);
      } catch (err) {
        failed.add(variant.label);
        skipped.push({ variant: variant.label, reason: `failed: ${(err as Error).message}` });
        ctx.log(`  ${variant.label}: failed: ${(err as Error).message}`);
      }
    }
  }
}

/** (a) One large HTTPS download through a CONNECT tunnel. */
export async function bulkDownload(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  const bytes = ctx.sizes.bulkBytes;
  await repeat(variants, ctx, skipped, async (variant) => {
    const socket = await openHttps(variant, ctx);
    const connection = new HttpConnection(socket);
    const meter = new Meter(variant.subject.pid, true);
    const start = performance.now();
    const received = await connection.request(getRequest(`/bytes?n=${bytes}`, hostHeader(variant, ctx)));
    const seconds = (performance.now() - start) / 1000;
    const used = meter.stop();
    connection.close();
    if (received !== bytes) throw new Error(`received ${received} of ${bytes} bytes`);
    collect(samples, variant.label, {
      mb_s: bytes / 1e6 / seconds,
      ...(variant.subject.pid === null ? {} : { cpu_s_per_gb: used.cpuSeconds / (bytes / 1e9), peak_rss_mb: used.peakRssBytes / 1e6 }),
    });
  });
  return finish(`(a) bulk HTTPS download, ${Math.round(bytes / 2 ** 20)} MiB through CONNECT`, 'mb_s', samples, skipped);
}

async function requestLoop(connections: readonly HttpConnection[], request: string, durationMs: number): Promise<{ latencies: number[]; count: number; seconds: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    connections.map(async (connection) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await connection.request(request);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies, count: latencies.length, seconds: (performance.now() - start) / 1000 };
}

/**
 * Keep-alive requests on already-open connections for the configured duration: one warm-up
 * request per connection first (it also opens the proxy's upstream connections), then the
 * timed loop, with the subject's CPU measured over the loop only.
 */
async function measureKeepAlive(sockets: readonly Socket[], request: string, pid: number | null, ctx: BenchContext, record: (metrics: Record<string, number>) => void): Promise<void> {
  const connections = sockets.map((s) => new HttpConnection(s));
  try {
    await Promise.all(connections.map((c) => c.request(request)));
    const meter = new Meter(pid);
    const run = await requestLoop(connections, request, ctx.sizes.durationMs);
    const used = meter.stop();
    record(latencyMetrics(run.latencies, run.count, run.seconds, pid === null ? null : used.cpuSeconds));
  } finally {
    for (const c of connections) c.close();
  }
}

function latencyMetrics(latencies: readonly number[], count: number, seconds: number, cpuSeconds: number | null): Record<string, number> {
  return {
    req_s: count / seconds,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    ...(cpuSeconds === null ? {} : { cpu_ms_per_req: (cpuSeconds * 1000) / count }),
  };
}

/** (b) 1 KiB requests over keep-alive through inspected tunnels (1 and many in parallel). */
export async function keepAliveRequests(
  variants: readonly Variant[],
  ctx: BenchContext,
  tunnelCounts: readonly number[],
  title = '(b) 1 KiB keep-alive requests through inspected tunnels',
  paths: readonly { readonly path: string; readonly suffix: string }[] = [{ path: '/1k', suffix: '' }],
): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  for (const tunnels of tunnelCounts) {
    const labelled = paths.flatMap(({ path, suffix }) => variants.map((v) => ({ ...v, label: `${v.label} x${tunnels}${suffix}`, path })));
    await repeat(labelled, ctx, skipped, async (variant) => {
      const request = getRequest((variant as (typeof labelled)[number]).path, `${ORIGIN_NAME}:${ctx.ports.inspectTls}`);
      const sockets = await Promise.all(Array.from({ length: tunnels }, () => openHttps(variant, ctx)));
      await measureKeepAlive(sockets, request, variant.subject.pid, ctx, (m) => collect(samples, variant.label, m));
    });
  }
  return finish(title, 'req_s', samples, skipped);
}

/**
 * (f) Cached hits vs misses: 1 KiB over keep-alive through inspected tunnels, once for a response
 * with `max-age` (every request after the warm-up is a hit) and once for a `no-store` one (every
 * request a miss: the lookup, then forwarding). Only subjects with a cache are worth running;
 * the others would repeat (b).
 */
export async function cacheHits(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const tunnels = ctx.sizes.manyTunnels;
  const result = await keepAliveRequests(variants, ctx, [tunnels], `(f) cached hits vs misses, 1 KiB keep-alive requests through ${tunnels} inspected tunnels`, [
    { path: '/1k-cached', suffix: ' hit' },
    { path: '/1k', suffix: ' miss' },
  ]);
  for (const variant of variants) {
    if (variant.subject.pid === null || variant.mode === 'none') continue;
    const median = (suffix: string): number | undefined => result.rows.find((r) => r.variant === `${variant.label} x${tunnels} ${suffix}`)?.metrics.req_s?.median;
    const hit = median('hit');
    const miss = median('miss');
    if (hit && miss) result.notes.push(`${variant.label}: hits / misses = ${(hit / miss).toFixed(2)} (req/s medians)`);
  }
  return result;
}

/** (c) A new tunnel and TLS handshake for every request. */
export async function newTunnels(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  const concurrency = ctx.sizes.newTunnelConcurrency;
  await repeat(variants, ctx, skipped, async (variant) => {
    const once = async (): Promise<void> => {
      const socket = await openHttps(variant, ctx);
      const connection = new HttpConnection(socket);
      await connection.request(getRequest('/1k', hostHeader(variant, ctx), true));
      connection.close();
    };
    await once();
    const meter = new Meter(variant.subject.pid);
    const latencies: number[] = [];
    const start = performance.now();
    const deadline = start + ctx.sizes.durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          await once();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const used = meter.stop();
    const metrics = latencyMetrics(latencies, latencies.length, seconds, variant.subject.pid === null ? null : used.cpuSeconds);
    collect(samples, variant.label, {
      tunnels_s: metrics.req_s!,
      p50_ms: metrics.p50_ms!,
      p99_ms: metrics.p99_ms!,
      ...(metrics.cpu_ms_per_req === undefined ? {} : { cpu_ms_per_tunnel: metrics.cpu_ms_per_req }),
    });
  });
  return finish(`(c) new tunnel + TLS handshake per request, ${concurrency} in parallel`, 'tunnels_s', samples, skipped);
}

/** (d) First request to a name never seen (a certificate mint) vs a repeated name. */
export async function newNames(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  const timed = async (variant: Variant, name: string): Promise<number> => {
    const t0 = performance.now();
    const route = routeFor(variant, ctx.ports.inspectTls, ctx);
    const socket = await openTls({ ...route, target: { host: variant.subject.proxy ? name : '127.0.0.1', port: ctx.ports.inspectTls } }, name);
    const connection = new HttpConnection(socket);
    await connection.request(getRequest('/1k', `${name}:${ctx.ports.inspectTls}`, true));
    const ms = performance.now() - t0;
    connection.close();
    return ms;
  };
  await repeat(variants, ctx, skipped, async (variant) => {
    const first: number[] = [];
    const again: number[] = [];
    for (let i = 0; i < ctx.sizes.newNameSamples; i++) {
      const name = ctx.freshNames.pop();
      if (!name) throw new Error('ran out of fresh names');
      first.push(await timed(variant, name));
      again.push(await timed(variant, name));
    }
    const p50First = percentile(first, 50);
    const p50Again = percentile(again, 50);
    collect(samples, variant.label, {
      new_p50_ms: p50First,
      new_p90_ms: percentile(first, 90),
      repeat_p50_ms: p50Again,
      repeat_p90_ms: percentile(again, 90),
      delta_p50_ms: p50First - p50Again,
    });
  });
  return finish('(d) first request to a new name vs a repeated one (new tunnel each, sequential)', null, samples, skipped, [
    'a new name also means a new upstream connection (pools are per origin name), so delta includes one upstream TLS handshake besides the mint',
  ]);
}

/** (e) Plain HTTP through the explicit proxy (absolute-form, keep-alive client connections). */
export async function plainHttp(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  const connectionsWanted = ctx.sizes.manyTunnels;
  await repeat(variants, ctx, skipped, async (variant) => {
    const proxy = variant.subject.proxy;
    const to = proxy ?? { host: '127.0.0.1', port: ctx.ports.http };
    const request = proxy ? getRequest(`http://${ORIGIN_NAME}:${ctx.ports.http}/1k`, `${ORIGIN_NAME}:${ctx.ports.http}`) : getRequest('/1k', `${ORIGIN_NAME}:${ctx.ports.http}`);
    const sockets: Socket[] = await Promise.all(Array.from({ length: connectionsWanted }, () => tcpConnect(to)));
    await measureKeepAlive(sockets, request, variant.subject.pid, ctx, (m) => collect(samples, variant.label, m));
  });
  return finish(`(e) plain HTTP 1 KiB through the explicit proxy, ${connectionsWanted} keep-alive connections`, 'req_s', samples, skipped);
}

/**
 * Opens `count` sockets with at most `parallel` opening at once into `opened` (so the caller can
 * close whatever was opened even when this fails), within a time budget.
 */
async function openMany<T>(opened: T[], count: number, parallel: number, budgetMs: number, open: () => Promise<T>): Promise<void> {
  let next = 0;
  let failed = false;
  const deadline = performance.now() + budgetMs;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count && !failed) {
        if (performance.now() > deadline) {
          failed = true;
          throw new Error(`opened only ${opened.length} of ${count} tunnels within ${Math.round(budgetMs / 1000)} s`);
        }
        next++;
        try {
          opened.push(await open());
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    }),
  );
}

/** (g) Resident memory of the proxy with many idle tunnels open. */
export async function idleTunnels(variants: readonly Variant[], ctx: BenchContext): Promise<ScenarioResult> {
  const samples = new Map<string, Record<string, number[]>>();
  const skipped: ScenarioResult['skipped'] = [];
  const ownLimit = openFileLimit(process.pid);
  for (const count of ctx.sizes.idleCounts) {
    for (const variant of variants) {
      const label = `${variant.label} x${count}`;
      const pid = variant.subject.pid;
      if (pid === null) continue;
      // Beyond a thousand, only tollgate and the relay: peers' TLS handshakes at that count
      // take minutes here and would push the full run past ten.
      if (count > 1000 && variant.subject.name !== 'tollgate' && variant.subject.name !== 'relay') continue;
      // A spliced tunnel holds two descriptors in the proxy (client and origin), an inspected
      // one holds one until its first request.
      const perTunnel = variant.mode === 'inspect' ? 1 : 2;
      const limit = openFileLimit(pid);
      if (count * perTunnel + 64 > limit || count + 64 > ownLimit) {
        skipped.push({ variant: label, reason: `needs about ${count * perTunnel + 64} open files in the proxy; RLIMIT_NOFILE here is ${limit} and cannot be raised without privileges` });
        continue;
      }
      const before = new Meter(pid).stop().peakRssBytes;
      const open: { destroy(): void }[] = [];
      try {
        await openMany(open, count, 64, ctx.sizes.idleBudgetMs, () =>
          variant.mode === 'inspect' ? openHttps(variant, ctx) : connectTunnel(variant.subject.proxy!, { host: SPLICE_HOST, port: ctx.ports.spliceTls }),
        );
        await new Promise((r) => setTimeout(r, ctx.sizes.settleMs / 2));
        const rss = new Meter(pid).stop().peakRssBytes;
        collect(samples, label, { rss_mb: rss / 1e6, rss_before_mb: before / 1e6, kb_per_tunnel: (rss - before) / 1e3 / count });
      } catch (err) {
        skipped.push({ variant: label, reason: `failed: ${(err as Error).message}` });
      } finally {
        for (const socket of open) socket.destroy();
        await new Promise((r) => setTimeout(r, ctx.sizes.settleMs));
      }
    }
  }
  return finish('(g) proxy RSS with idle tunnels open (inspected: after the TLS handshake; spliced: after CONNECT)', null, samples, skipped, [
    'measured once per count (memory is not returned between repetitions, so repeats are not independent)',
  ]);
}

export const NEW_NAME_PREFIX = `.${NEW_NAME_SUFFIX}`;
