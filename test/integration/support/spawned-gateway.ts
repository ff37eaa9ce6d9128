import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';

/** A gateway run as its own process by the built CLI (support/build.ts), as a replica runs. */
export interface SpawnedGateway {
  readonly child: ChildProcess;
  /** Bound ports by listener name (`explicit`, `admin`, ...). */
  readonly ports: Readonly<Record<string, number>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it printed so far (JSON log lines). */
  output(): string;
  /** Stops it (SIGTERM, then SIGKILL if it has not exited within a bound). */
  stop(): Promise<void>;
}

/** Starts `node MAIN --config DIR/tollgate.yaml` and resolves once `listeners` are bound and the policy is loaded (bounded). */
export function spawnGateway(main: string, dir: string, listeners: readonly string[] = ['explicit', 'admin']): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [main, '--config', path.join(dir, 'tollgate.yaml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 20_000;
    const poll = (): void => {
      const ports: Record<string, number> = {};
      for (const line of out.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        const parsed = JSON.parse(line) as { listener: string; port: number };
        ports[parsed.listener] = parsed.port;
      }
      if (listeners.every((name) => ports[name]) && out.includes('"msg":"policy loaded"')) {
        resolve({ child, ports, exited, output: () => out, stop });
      } else if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        reject(new Error(`gateway did not start: ${out}`));
      } else {
        setTimeout(poll, 25);
      }
    };
    poll();
  });
}

/** A plain GET without a proxy (admin endpoints), bounded. */
export function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}
