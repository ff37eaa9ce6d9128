import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { HostPort } from './client';

/**
 * A subject is one thing traffic goes through: nothing (`direct`), the byte relay, tollgate, or
 * a peer proxy. Each runs in its own process so its CPU time and memory can be measured alone.
 */
export interface Subject {
  readonly name: string;
  /** null for `direct`. */
  readonly proxy: HostPort | null;
  /** Process whose tree is measured; null for `direct`. */
  readonly pid: number | null;
  /** Trust anchors a client needs for tunnels this subject intercepts. */
  readonly interceptCa: readonly string[];
  /** What the subject can do; a scenario skips a subject without the capability it needs. */
  readonly can: { readonly splice: boolean; readonly inspect: boolean; readonly plainHttp: boolean; readonly manyNames: boolean; readonly cache: boolean };
  stop(): Promise<void>;
}

export interface OriginPorts {
  readonly http: number;
  readonly spliceTls: number;
  readonly inspectTls: number;
}

/** Names the bench reaches the origin by; `*.bench.test` names exist only in tollgate's host map. */
export const ORIGIN_NAME = 'localhost';
export const NEW_NAME_SUFFIX = 'bench.test';
/** Spliced tunnels are opened to the address, so every peer can tell them apart by host. */
export const SPLICE_HOST = '127.0.0.1';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until something accepts TCP connections on the port (bounded). */
export async function waitForPort(port: number, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

/** Ends a child and waits for it to exit (SIGTERM, then SIGKILL after a grace period). */
export function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** The node flags bin/tollgate starts the gateway with (its `NODE_FLAGS="..."` line), so the bench measures what ships. */
export function shippedNodeFlags(repoDir: string): string[] {
  const script = readFileSync(path.join(repoDir, 'bin', 'tollgate'), 'utf8');
  const line = /^NODE_FLAGS="([^"]*)"$/m.exec(script);
  if (!line) throw new Error('bin/tollgate has no NODE_FLAGS="..." line');
  return line[1]!.split(' ').filter((f) => f !== '');
}

/** Starts a bench child script that prints one JSON line once it is listening. */
export function startJsonChild<T>(script: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${path.basename(script)} did not start`)), 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.indexOf('\n');
      if (line < 0) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      resolve({ child, info: JSON.parse(text.slice(0, line)) as T });
    });
    child.once('exit', (code) => reject(new Error(`${path.basename(script)} exited with ${code}`)));
  });
}

export const direct: Subject = {
  name: 'direct',
  proxy: null,
  pid: null,
  interceptCa: [],
  can: { splice: true, inspect: false, plainHttp: true, manyNames: true, cache: false },
  stop: () => Promise.resolve(),
};

export async function startRelay(distDir: string): Promise<Subject> {
  const { child, info } = await startJsonChild<{ port: number }>(path.join(distDir, 'bench/children/relay.js'), {});
  return {
    name: 'relay',
    proxy: { host: '127.0.0.1', port: info.port },
    pid: child.pid!,
    interceptCa: [],
    can: { splice: true, inspect: false, plainHttp: true, manyNames: false, cache: false },
    stop: () => stopChild(child),
  };
}

export interface TollgateOptions {
  readonly distDir: string;
  readonly workDir: string;
  readonly originCaFile: string;
  readonly ports: OriginPorts;
  /** Extra names (resolving to 127.0.0.1) for the first-request-to-a-new-name scenario. */
  readonly names: readonly string[];
  /** `workers:` when the build supports it; null leaves it out. */
  readonly workers?: number | 'auto' | null;
  readonly label?: string;
  /** Name in the tables (default: the label, else "tollgate"). */
  readonly name?: string;
}

/**
 * tollgate as a child process with a bench configuration: `localhost` on the splice port is
 * spliced, on the inspect and HTTP ports inspected; the origin is verified against the bench CA
 * (upstream.ca_file) like any other origin. Logging and audit stay at their shipped levels: a
 * gateway is measured doing the work it does in production.
 */
export async function startTollgate(options: TollgateOptions): Promise<Subject> {
  const dir = path.join(options.workDir, options.label ?? 'tollgate');
  mkdirSync(path.join(dir, 'policies'), { recursive: true });
  const { ports } = options;
  writeFileSync(
    path.join(dir, 'policies', 'bench.yaml'),
    [
      'rules:',
      '  - name: bench-splice',
      `    match: ${SPLICE_HOST}`,
      `    ports: [${ports.spliceTls}]`,
      '    action: splice',
      '  - name: bench-inspect',
      `    match: [${ORIGIN_NAME}, ".${NEW_NAME_SUFFIX}"]`,
      `    ports: [${ports.inspectTls}, ${ports.http}]`,
      '    action: inspect',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const config = [
    `listen:\n  explicit: 127.0.0.1:${port}`,
    'policies: policies',
    'default_action: deny',
    'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
    'upstream:',
    `  ca_file: ${options.originCaFile}`,
    '  allow_addresses: [127.0.0.0/8]',
    '  hosts:',
    ...[ORIGIN_NAME, ...options.names].map((name) => `    ${name}: 127.0.0.1`),
    'audit:\n  file: audit.ndjson',
    'pinning:\n  state_file: null',
    // Every bench connection comes from 127.0.0.1: the shipped per-client cap (256) would refuse
    // (g)'s idle tunnels with 503. Raised for the bench only, like the peers' own limits.
    'limits:\n  max_connections: 20000\n  max_connections_per_client: 20000',
    ...(options.workers !== undefined && options.workers !== null ? [`workers: ${options.workers}`] : []),
    '',
  ].join('\n');
  const configFile = path.join(dir, 'tollgate.yaml');
  writeFileSync(configFile, config);
  // The operational log is discarded by the OS (/dev/null), not drained through a pipe by us;
  // BENCH_GATEWAY_STDOUT=FILE appends it (and what V8's --trace-gc prints) to FILE instead.
  // The V8 flags tollgate ships with (bin/tollgate), then BENCH_GATEWAY_NODE_OPTIONS: extra node
  // flags for the gateway only (e.g. --cpu-prof, which NODE_OPTIONS does not accept).
  const nodeFlags = [...shippedNodeFlags(path.resolve(options.distDir, '..')), ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ?? '').split(' ').filter((f) => f !== '')];
  const stdoutFile = process.env.BENCH_GATEWAY_STDOUT;
  const stdout = stdoutFile ? openSync(stdoutFile, 'a') : 'ignore';
  const child = spawn(process.execPath, [...nodeFlags, path.join(options.distDir, 'src/main.js'), '--config', configFile], {
    stdio: ['ignore', stdout, 'inherit'],
    cwd: dir,
  });
  // The child holds its own copy of the descriptor.
  if (typeof stdout === 'number') closeSync(stdout);
  await waitForPort(port, child);
  // The CA exists once the listener is up (it is loaded or created before listening).
  const caPem = readFileSync(path.join(dir, 'ca', 'ca.pem'), 'utf8');
  return {
    name: options.name ?? options.label ?? 'tollgate',
    proxy: { host: '127.0.0.1', port },
    pid: child.pid!,
    interceptCa: [caPem],
    can: { splice: true, inspect: true, plainHttp: true, manyNames: true, cache: true },
    stop: () => stopChild(child, 12_000),
  };
}
