import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, statSync, write, writeSync } from 'node:fs';
import path from 'node:path';
import type { AuditRecord } from './record-fields';

/** Where records go, as the code that writes them sees it. */
export interface RecordWriter {
  write(record: AuditRecord): void;
}

export interface AuditSink extends RecordWriter {
  /** Resolves once every record written so far is in the operating system's hands. */
  flush(): Promise<void>;
  /** Flushes and closes; later writes are dropped (and counted). */
  close(): Promise<void>;
  /**
   * Log rotation: hands what is queued to the file in use, then opens the configured path anew
   * (a new file after `mv` or logrotate's rename). Never loses a record; returns what happened.
   */
  reopen(): ReopenResult;
  /** Records accepted, written to the OS, and dropped after close. */
  readonly stats: { readonly accepted: number; readonly written: number; readonly dropped: number };
}

/** What a reopen did: `reopened` a file (`rotated` when the path named another file than the one in use). */
export type ReopenResult = { readonly reopened: false; readonly reason: string } | { readonly reopened: true; readonly rotated: boolean; readonly file: string };

/**
 * An NDJSON sink: one JSON object per line, appended. To a file, the records accepted during
 * one turn of the event loop are written together, in one synchronous `write(2)`, at the end of
 * that turn (setImmediate): under load that is one system call for many requests instead of one
 * each (about 11 µs per record before). What a crash of the process (SIGKILL, OOM kill, abort)
 * can lose is therefore the records of the turn it happened in: those accepted since the last
 * I/O callback, a fraction of a millisecond of traffic; everything from earlier turns is in the
 * kernel's hands. Power loss is covered only by the fsync on close (an fdatasync per write
 * costs about 3.7 ms). The file is opened with O_APPEND and a batch is one write of whole lines,
 * so lines from several writers (worker processes) never interleave within a line. To stdout
 * (a pipe that may be non-blocking), batches are written asynchronously instead.
 */
export class NdjsonAuditSink implements AuditSink {
  private queue: string[] = [];
  private writing = false;
  private closed = false;
  private waiters: (() => void)[] = [];
  private accepted = 0;
  private written = 0;
  private dropped = 0;

  private constructor(
    private fd: number,
    private readonly ownsFd: boolean,
    private readonly onError: (err: Error, lostRecords: number) => void,
    private readonly file: string | null,
  ) {}

  /** `target` is a file path or 'stdout'. The file is created 0640: audit data is sensitive. */
  static open(target: string, onError: (err: Error, lostRecords: number) => void): NdjsonAuditSink {
    if (target === 'stdout') return new NdjsonAuditSink(1, false, onError, null);
    mkdirSync(path.dirname(target), { recursive: true });
    return new NdjsonAuditSink(openSync(target, 'a', 0o640), true, onError, target);
  }

  /**
   * For log rotation (SIGHUP, SIGUSR1): after `mv audit.ndjson audit.ndjson.1` the open file
   * descriptor still points at the renamed file, so records keep going there until the path is
   * opened again. What is queued is written to the old file first (synchronously, as a turn's
   * batch would be), then the path is opened (created 0640 if the rotation left none) and
   * replaces the old descriptor, which is synced and closed. If the path cannot be opened the
   * old file stays in use: records are never dropped for a failed rotation.
   */
  reopen(): ReopenResult {
    if (!this.ownsFd || this.file === null) return { reopened: false, reason: 'the audit trail goes to stdout; rotate it where stdout is collected' };
    if (this.closed) return { reopened: false, reason: 'the audit sink is closed' };
    let rotated = true;
    try {
      const current = fstatSync(this.fd);
      const named = statSync(this.file, { throwIfNoEntry: false });
      rotated = !named || named.ino !== current.ino || named.dev !== current.dev;
    } catch {
      // Cannot tell: reopen anyway, which is always safe.
    }
    if (this.queue.length > 0) this.writeTurn();
    let next: number;
    try {
      mkdirSync(path.dirname(this.file), { recursive: true });
      next = openSync(this.file, 'a', 0o640);
    } catch (err) {
      return { reopened: false, reason: `cannot open ${this.file}: ${(err as Error).message}; records keep going to the file in use` };
    }
    const previous = this.fd;
    this.fd = next;
    try {
      fsyncSync(previous);
    } catch {
      // The data is already with the OS.
    }
    closeSync(previous);
    return { reopened: true, rotated, file: this.file };
  }

  get stats() {
    return { accepted: this.accepted, written: this.written, dropped: this.dropped };
  }

  write(record: AuditRecord): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    this.accepted++;
    this.queue.push(`${JSON.stringify(record)}\n`);
    if (!this.writing) {
      this.writing = true;
      setImmediate(() => (this.ownsFd ? this.writeTurn() : this.drain()));
    }
  }

  flush(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.ownsFd) {
      try {
        fsyncSync(this.fd);
      } catch {
        // fsync may be unsupported (pipes); the data is already with the OS.
      }
      closeSync(this.fd);
    }
  }

  /** The end of a turn: this turn's records in one write (a file takes it whole; the loop guards short writes). */
  private writeTurn(): void {
    const lines = this.queue;
    this.queue = [];
    try {
      const buffer = Buffer.from(lines.join(''));
      let offset = 0;
      while (offset < buffer.length) offset += writeSync(this.fd, buffer, offset, buffer.length - offset);
      this.written += lines.length;
    } catch (err) {
      this.onError(err as Error, lines.length);
    }
    this.writing = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Last resort on a fatal error: write what is queued synchronously. */
  flushSync(): void {
    if (this.queue.length === 0) return;
    const lines = this.queue;
    this.queue = [];
    try {
      writeSync(this.fd, lines.join(''));
      this.written += lines.length;
    } catch (err) {
      this.onError(err as Error, lines.length);
    }
  }

  private drain(): void {
    if (this.queue.length === 0) {
      this.writing = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    const lines = this.queue;
    this.queue = [];
    const buffer = Buffer.from(lines.join(''));
    this.writeAll(buffer, 0, lines.length);
  }

  private writeAll(buffer: Buffer, offset: number, lineCount: number): void {
    write(this.fd, buffer, offset, buffer.length - offset, null, (err, bytes) => {
      if (err) {
        // Keep the gateway serving, but loudly: the caller logs and counts audit failures.
        this.onError(err, lineCount);
        this.drain();
        return;
      }
      if (offset + bytes < buffer.length) {
        this.writeAll(buffer, offset + bytes, lineCount);
        return;
      }
      this.written += lineCount;
      this.drain();
    });
  }
}
