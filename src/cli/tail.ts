import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { accessLogLine } from '../audit/access-log';
import type { AuditRecord } from '../audit/record-fields';
import { compileFilter, FilterError, type RecordPredicate } from '../audit/record-filter';
import { loadConfig } from '../config/load-config';
import { UsageError } from './args';

export interface TailOptions {
  readonly configPath: string;
  /** --file: a path, or '-' for standard input; undefined = audit.file of the configuration. */
  readonly file: string | undefined;
  readonly follow: boolean;
  readonly filter: string;
  readonly format: 'line' | 'json';
  /** --lines: start with the last N matching records; null = all (10 with --follow). */
  readonly lines: number | null;
  readonly out: (line: string) => void;
  readonly warn: (line: string) => void;
  /** Resolves to stop following (tests; SIGINT/SIGTERM in the CLI). */
  readonly stop?: Promise<void>;
}

/** How often a followed file is checked for new records and rotation. */
const POLL_MS = 200;
const CHUNK = 256 * 1024;

/** Turns text into complete lines, keeping a partial last line for the next chunk. */
class LineSplitter {
  private partial = '';
  push(text: string): string[] {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    return parts.filter((l) => l !== '');
  }
}

/**
 * `tollgate tail`: audit records as access-log lines (docs/audit.md) or as JSON, filtered.
 * With --follow it keeps reading as the gateway writes, and follows `audit.file` across
 * rotation the way `tail -F` does: when the path names a new file (after mv and SIGHUP, or
 * logrotate), the rest of the old file is read, then the new one from its start.
 */
export async function runTail(options: TailOptions): Promise<void> {
  let keep: RecordPredicate;
  try {
    keep = compileFilter(options.filter);
  } catch (err) {
    if (err instanceof FilterError) throw new UsageError(`--filter: ${err.message}`);
    throw err;
  }
  let bad = 0;
  const render = (line: string): string | null => {
    let record: AuditRecord;
    try {
      record = JSON.parse(line) as AuditRecord;
    } catch {
      if (bad++ === 0) options.warn('tollgate tail: skipping lines that are not JSON audit records');
      return null;
    }
    if (typeof record !== 'object' || record === null || !keep(record as unknown as Record<string, unknown>)) return null;
    return options.format === 'json' ? JSON.stringify(record) : accessLogLine(record);
  };
  const file = options.file ?? auditFileOf(options.configPath);
  if (file === '-') return tailStream(process.stdin, render, options);
  const backlog = options.lines ?? (options.follow ? 10 : null);
  const state = openAt(file, options.follow);
  if (state === null) return;
  const first = readToEnd(state);
  const rendered = first.flatMap((l) => {
    const out = render(l);
    return out === null ? [] : [out];
  });
  for (const line of backlog === null ? rendered : rendered.slice(Math.max(0, rendered.length - backlog))) options.out(line);
  if (!options.follow) {
    closeSync(state.fd);
    return;
  }
  await follow(file, state, render, options);
}

function auditFileOf(configPath: string): string {
  const config = loadConfig(configPath);
  if (config.audit.file === 'stdout') {
    throw new UsageError('audit.file is stdout: pipe the audit lines in (… | tollgate tail --file -) or pass --file FILE');
  }
  return config.audit.file;
}

interface Reading {
  fd: number;
  position: number;
  ino: number;
  readonly lines: LineSplitter;
}

function openAt(file: string, follow: boolean): Reading | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!follow) throw new UsageError(`${file} does not exist (no audit records yet, or another --file)`);
      return { fd: -1, position: 0, ino: -1, lines: new LineSplitter() };
    }
    throw err;
  }
  return { fd, position: 0, ino: fstatSync(fd).ino, lines: new LineSplitter() };
}

function readToEnd(state: Reading): string[] {
  if (state.fd < 0) return [];
  const out: string[] = [];
  const buffer = Buffer.alloc(CHUNK);
  for (;;) {
    const n = readSync(state.fd, buffer, 0, CHUNK, state.position);
    if (n === 0) return out;
    state.position += n;
    out.push(...state.lines.push(buffer.toString('utf8', 0, n)));
  }
}

async function follow(file: string, state: Reading, render: (line: string) => string | null, options: TailOptions): Promise<void> {
  let stopped = false;
  void options.stop?.then(() => (stopped = true));
  const emit = (lines: string[]): void => {
    for (const line of lines) {
      const out = render(line);
      if (out !== null) options.out(out);
    }
  };
  while (!stopped) {
    await Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), options.stop]);
    emit(readToEnd(state));
    const named = statSync(file, { throwIfNoEntry: false });
    if (!named) continue;
    if (state.fd < 0 || named.ino !== state.ino) {
      // Rotated (or created): finish the old file, then read the new one from its start.
      if (state.fd >= 0) {
        emit(readToEnd(state));
        closeSync(state.fd);
      }
      const next = openAt(file, true)!;
      Object.assign(state, { fd: next.fd, position: 0, ino: next.ino });
      emit(readToEnd(state));
    } else if (named.size < state.position) {
      // Truncated in place (copytruncate): start again from the beginning.
      state.position = 0;
    }
  }
  if (state.fd >= 0) closeSync(state.fd);
}

async function tailStream(input: NodeJS.ReadableStream, render: (line: string) => string | null, options: TailOptions): Promise<void> {
  const lines = new LineSplitter();
  input.setEncoding('utf8');
  for await (const chunk of input) {
    for (const line of lines.push(String(chunk))) {
      const out = render(line);
      if (out !== null) options.out(out);
    }
  }
}
