import type { AuditRecord } from './record-fields';

/** One record and its syslog message; `sentAt` and `resend` are the sink's bookkeeping. */
export interface Entry {
  readonly record: AuditRecord;
  readonly message: Buffer;
  sentAt: number;
  resend: boolean;
}

/**
 * Records waiting for (or sent to) the syslog collector, oldest first, with their messages'
 * byte total kept as they come and go, so the sink's bounds cost nothing to check.
 */
export class MessageQueue {
  private items: Entry[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  push(entry: Entry): void {
    this.items.push(entry);
    this.bytes += entry.message.length;
  }
  peek(): Entry | undefined {
    return this.items[this.head];
  }
  shift(): Entry | undefined {
    const entry = this.items[this.head];
    if (!entry) return undefined;
    this.head++;
    this.bytes -= entry.message.length;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return entry;
  }
  pop(): Entry | undefined {
    if (this.length === 0) return undefined;
    const entry = this.items.pop()!;
    this.bytes -= entry.message.length;
    return entry;
  }
  /** Takes every entry out, oldest first. */
  drain(): Entry[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return out;
  }
  /** Puts entries back at the head, in their order. */
  unshiftAll(entries: readonly Entry[]): void {
    this.items = [...entries, ...this.items.slice(this.head)];
    this.head = 0;
    this.bytes = this.items.reduce((n, e) => n + e.message.length, 0);
  }
}
