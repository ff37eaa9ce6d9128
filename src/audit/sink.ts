import { closeSync, fsyncSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import path from 'node:path';
import type { AuditRecord } from './fields';

export interface AuditSink {
  write(record: AuditRecord): void;
  /** Resolves once every record written so far is in the operating system's hands. */
  flush(): Promise<void>;
  /** Flushes and closes; later writes are dropped (and counted). */
  close(): Promise<void>;
  /** Records accepted, written to the OS, and dropped after close. */
  readonly stats: { readonly accepted: number; readonly written: number; readonly dropped: number };
}

/**
 * An NDJSON sink: one JSON object per line, appended. Lines are queued and written in batches
 * with one `write(2)` per batch off the request path; a batch always ends at a line boundary,
 * and the file is opened with O_APPEND, so lines from several writers (worker processes) never
 * interleave within a line.
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
    private readonly fd: number,
    private readonly ownsFd: boolean,
    private readonly onError: (err: Error) => void,
  ) {}

  /** `target` is a file path or 'stdout'. The file is created 0640: audit data is sensitive. */
  static open(target: string, onError: (err: Error) => void): NdjsonAuditSink {
    if (target === 'stdout') return new NdjsonAuditSink(1, false, onError);
    mkdirSync(path.dirname(target), { recursive: true });
    return new NdjsonAuditSink(openSync(target, 'a', 0o640), true, onError);
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
      setImmediate(() => this.drain());
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

  /** Last resort on a fatal error: write what is queued synchronously. */
  flushSync(): void {
    if (this.queue.length === 0) return;
    const lines = this.queue;
    this.queue = [];
    try {
      writeSync(this.fd, lines.join(''));
      this.written += lines.length;
    } catch (err) {
      this.onError(err as Error);
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
        this.onError(err);
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
