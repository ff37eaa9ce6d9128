import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Environment without proxy variables, so clients only use a proxy when a test says so. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k) && k.toLowerCase() !== 'no_proxy') env[k] = v;
  return { ...env, ...extra };
}

/**
 * Runs a real client asynchronously (never execFileSync: the gateway under test shares this
 * event loop), bounded by a timeout.
 */
export function run(command: string, args: readonly string[], options: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 15_000);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export interface CurlResult {
  readonly exitCode: number | null;
  readonly status: number;
  readonly body: string;
  readonly stderr: string;
  /** Response headers of the final response, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * curl with the status and final response headers captured: `-w` appends the status after the
 * body, `-D` writes headers to a file (curl 7.88 crashes writing them to /dev/stderr when
 * stderr is a pipe).
 */
export async function curl(args: readonly string[], timeoutMs = 15_000): Promise<CurlResult> {
  const marker = '\n__TOLLGATE_STATUS__';
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-curl-'));
  const headerFile = path.join(dir, 'headers');
  try {
    const result = await run('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-D', headerFile, '-w', `${marker}%{http_code}`, ...args], { timeoutMs: timeoutMs + 2000 });
    const text = result.stdout.toString('utf8');
    const at = text.lastIndexOf(marker);
    const status = at >= 0 ? Number(text.slice(at + marker.length)) : 0;
    const headers: Record<string, string> = {};
    let headerText = '';
    try {
      headerText = readFileSync(headerFile, 'utf8');
    } catch {
      // No response headers at all (connection failed).
    }
    // The last header block belongs to the final response.
    const blocks = headerText.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b.trim()));
    const last = blocks[blocks.length - 1] ?? '';
    for (const line of last.split(/\r?\n/).slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return { exitCode: result.code, status, body: at >= 0 ? text.slice(0, at) : text, stderr: result.stderr, headers };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
