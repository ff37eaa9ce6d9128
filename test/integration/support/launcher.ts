import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { buildCli, ROOT } from './build';
import { cleanEnv } from './run';

/**
 * The gateway as an installation runs it: `bin/tollgate` (the shell launcher the Dockerfile and
 * the systemd unit use) next to a compiled `dist/`, in a directory of its own under .build/ so
 * that no other test's build is read while it is being rewritten.
 */
export async function buildInstallation(name: string): Promise<{ root: string; launcher: string }> {
  const root = path.join(ROOT, '.build', name);
  await buildCli(path.join(name, 'dist'));
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  const launcher = path.join(root, 'bin', 'tollgate');
  copyFileSync(path.join(ROOT, 'bin', 'tollgate'), launcher);
  return { root, launcher };
}

export interface RunningGateway {
  readonly child: ChildProcess;
  /** Operational log lines (stdout) parsed, plus raw stderr. */
  logs(): Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first log line matching, or null after `timeoutMs`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown> | null>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then the exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `command args` and collects its JSON log lines; resolves once `ready` matched a line. */
export async function startGatewayProcess(command: string, args: readonly string[], options: { cwd: string; ready?: (line: Record<string, unknown>) => boolean }): Promise<RunningGateway> {
  const child = spawn(command, args, { cwd: options.cwd, env: cleanEnv({ TOLLGATE_LOG_FORMAT: 'json' }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  const logs = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const waitForLog = async (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown> | null> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs().find(predicate);
      if (found) return found;
      if (done || Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const running: RunningGateway = {
    child,
    logs,
    stderr: () => err,
    waitForLog,
    exited,
    stop: async (timeoutMs = 10_000) => {
      if (!done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  const ready = await waitForLog(options.ready ?? ((l) => typeof l.msg === 'string' && l.msg.startsWith('ready')), 20_000);
  if (!ready) {
    await running.stop(2000);
    throw new Error(`the gateway did not start:\n${out}\n${err}`);
  }
  return running;
}

/** The ports a process listens on (TCP, IPv4 and IPv6), from /proc: no tool needed. */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // The descriptor closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEXADDR:HEXPORT, st 0A is LISTEN, inode is field 9.
      if (fields[3] === '0A' && inodes.has(fields[9] ?? '')) ports.push(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** Process ids of every descendant of `pid`, from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: the ppid follows the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // Exited while we looked.
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const child of children.get(p) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (exited, not yet reaped) is not running.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
