import type { AuditRecord } from './record-fields';
import type { AuditSink, ReopenResult } from './sink';

/**
 * Several audit sinks as one: each record goes to every sink in `writeTo`; flush, close and
 * reopen (log rotation) reach every sink in `manage`, which includes sinks that only receive
 * records indirectly (the audit file as a syslog sink's spill). Sinks close in the order given,
 * so a sink that spills into another closes first and its last records still land.
 */
export class FanOutAuditSink implements AuditSink {
  private accepted = 0;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly writeTo: readonly AuditSink[],
    private readonly manage: readonly AuditSink[] = writeTo,
  ) {}

  /** `written`: records every sink written to has handed on (the smallest count among them). */
  get stats(): { readonly accepted: number; readonly written: number; readonly dropped: number } {
    return { accepted: this.accepted, written: Math.min(...this.writeTo.map((s) => s.stats.written)), dropped: this.dropped };
  }

  write(record: AuditRecord): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    this.accepted++;
    for (const sink of this.writeTo) sink.write(record);
  }

  async flush(): Promise<void> {
    await Promise.all(this.manage.map((s) => s.flush()));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sink of this.manage) await sink.close();
  }

  /**
   * Passes a reopen (SIGHUP or SIGUSR1, after log rotation) on to every sink. The answer is the
   * first that reopened a file, else the last sink's (the file is managed last: a syslog
   * collector has nothing to reopen, and the file's refusal is the one worth reporting).
   */
  reopen(): ReopenResult {
    let answer: ReopenResult = { reopened: false, reason: 'no audit sink to reopen' };
    for (const sink of this.manage) {
      const result = sink.reopen();
      if (!answer.reopened) answer = result;
    }
    return answer;
  }
}
