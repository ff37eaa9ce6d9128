import type { AuditRecord } from './record-fields';
import type { AuditSink, RecordWriter, ReopenResult } from './sink';
import { formatSyslogMessage, type SyslogHeader } from './syslog-format';
import { MessageQueue } from './message-queue';

/**
 * One connection to a syslog collector, as the sink sees it. The transport (TCP, TLS, UDP)
 * lives in backplane/, the only place besides egress/ that opens connections.
 */
export interface SyslogLink {
  /** Stream links can be replayed after a failure; a datagram link cannot tell delivery from loss. */
  readonly reliable: boolean;
  /**
   * Sends one RFC 5424 message (the link frames it as its protocol needs). False: wait for
   * `onDrain` before sending more. `failed` is called when this one message is known not to
   * have left (a datagram that could not be sent).
   */
  send(message: Buffer, failed: () => void): boolean;
  /** Called once, the next time the link can take more after send() returned false. */
  onDrain(callback: () => void): void;
  /** Called once when the link is gone: an error, or the collector closed it. */
  onClose(callback: (err: Error | null) => void): void;
  /** Ends the link once everything sent has left, and resolves when the collector has closed its side too (or rejects). */
  end(): Promise<void>;
  destroy(): void;
}

export type SyslogConnector = () => Promise<SyslogLink>;

export type SpillReason = 'overflow' | 'too_large' | 'send_failed' | 'shutdown';

export interface SyslogSinkStats {
  readonly accepted: number;
  /** Records handed to the collector's connection for the first time. */
  readonly sent: number;
  /** Records sent again after a connection failed (at-least-once: the collector may have them twice). */
  readonly resent: number;
  /** Records written to the audit file instead, by reason. */
  readonly spilled: Readonly<Record<SpillReason, number>>;
  /** Records lost: offered after close. */
  readonly dropped: number;
  readonly queuedRecords: number;
  readonly queuedBytes: number;
  readonly connected: boolean;
  /** When the connection was last established or lost. */
  readonly since: Date;
}

export interface SyslogSinkOptions {
  readonly connect: SyslogConnector;
  readonly header: SyslogHeader;
  /** Records waiting for the collector, at most this many bytes of messages; more spill. */
  readonly bufferBytes: number;
  /** Larger messages spill at once (collectors truncate or refuse what exceeds their limit). */
  readonly maxMessageBytes: number;
  /** Where records go that the collector cannot take: the audit file. */
  readonly spill: RecordWriter;
  /** Operational logging: connection changes, spills (at most every `reportIntervalMs`). */
  readonly log: { warn(fields: object, msg: string): void; info(fields: object, msg: string): void };
  readonly clock?: () => number;
  readonly reportIntervalMs?: number;
  /** How long close() waits for the buffer to reach the collector before spilling the rest. */
  readonly closeTimeoutMs?: number;
}

/**
 * Data handed to a TCP connection is not delivered yet: it may sit in this host's send buffer or
 * in the collector's receive buffer when the collector restarts, and plain syslog has no
 * acknowledgements (RFC 6587). So each record sent is kept until the connection has carried
 * traffic without stalling for this long after it; if the connection fails first, the records
 * still kept are sent again on the next one. A restart is seen within milliseconds (the peer's
 * kernel resets the connection); seconds of margin make delivery at-least-once for restarts,
 * at the price of a few duplicates (records carry flow and request ids to remove them by).
 */
const CONFIRM_AFTER_MS = 2_000;
const MAX_BACKOFF_MS = 5_000;
/**
 * A collector that takes nothing for this long is treated as gone: its host may have vanished
 * without a reset, which TCP alone notices only after many minutes. The connection is dropped
 * and its unconfirmed records replayed on the next one.
 */
const STALL_TIMEOUT_MS = 30_000;
const DEFAULT_REPORT_INTERVAL_MS = 10_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 3_000;

/**
 * Audit records to a syslog collector, one RFC 5424 message each. Never blocks the gateway and
 * never drops a record silently: write() only queues; the queue is bounded (`bufferBytes`), and
 * what does not fit, is too large, or is still undelivered at shutdown goes to the spill sink
 * (the audit file), counted by reason and logged. While the collector is unreachable the sink
 * reconnects with backoff; a stream connection that fails has its unconfirmed records sent
 * again (see CONFIRM_AFTER_MS).
 */
export class SyslogAuditSink implements AuditSink {
  private readonly queue = new MessageQueue();
  private readonly unconfirmed = new MessageQueue();
  private link: SyslogLink | null = null;
  private connecting = false;
  private waitingDrain = false;
  private pumpScheduled = false;
  /** When the link last stopped stalling: records sent before count only after quiet since then. */
  private quietSince = 0;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private retireTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private everConnected = false;
  private lastError: string | null = null;
  private since: Date;
  private waiters: (() => void)[] = [];
  private counts = { accepted: 0, sent: 0, resent: 0, dropped: 0 };
  private readonly spilled: Record<SpillReason, number> = { overflow: 0, too_large: 0, send_failed: 0, shutdown: 0 };
  /** Spills not yet reported in the log. */
  private unreported: Partial<Record<SpillReason, number>> = {};
  private readonly clock: () => number;

  constructor(private readonly options: SyslogSinkOptions) {
    this.clock = options.clock ?? Date.now;
    this.since = new Date(this.clock());
    this.connect();
  }

  get stats(): { readonly accepted: number; readonly written: number; readonly dropped: number } {
    return { accepted: this.counts.accepted, written: this.counts.sent + this.totalSpilled(), dropped: this.counts.dropped };
  }

  get syslogStats(): SyslogSinkStats {
    return {
      ...this.counts,
      spilled: { ...this.spilled },
      queuedRecords: this.queue.length,
      queuedBytes: this.queue.bytes,
      connected: this.link !== null,
      since: this.since,
    };
  }

  write(record: AuditRecord): void {
    if (this.closed) {
      this.counts.dropped++;
      this.options.log.warn({ type: record.type }, 'audit record offered after the syslog sink closed: dropped');
      return;
    }
    this.counts.accepted++;
    const message = formatSyslogMessage(this.options.header, new Date(this.clock()), record, JSON.stringify(record));
    if (message.length > this.options.maxMessageBytes) {
      this.spill(record, 'too_large');
      return;
    }
    if (this.queue.bytes + message.length > this.options.bufferBytes) {
      this.spill(record, 'overflow');
      return;
    }
    this.queue.push({ record, message, sentAt: 0, resend: false });
    // One batch per event-loop turn, as the file sink writes (the link coalesces a batch).
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** Resolves once every queued record has been handed to the collector's connection, or at once while there is none. */
  /** Log rotation concerns files: the collector connection stays as it is. */
  reopen(): ReopenResult {
    return { reopened: false, reason: 'a syslog collector has no file to reopen' };
  }

  flush(): Promise<void> {
    if ((this.queue.length === 0 && !this.pumpScheduled) || this.link === null) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Sends what is queued (bounded by closeTimeoutMs), ends the connection so the collector reads
   * everything, and spills whatever may not have arrived to the audit file.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const deadline = this.clock() + (this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    // Wait while there is a connection (or one is being made) and something left to send.
    while ((this.queue.length > 0 || this.pumpScheduled) && (this.link !== null || this.connecting) && this.clock() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.closed = true;
    this.clearTimers();
    const link = this.link;
    this.link = null;
    let delivered = false;
    if (link && this.queue.length === 0) {
      try {
        await Promise.race([link.end(), new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('collector did not close')), Math.max(100, deadline - this.clock())).unref())]);
        delivered = true;
      } catch {
        link.destroy();
      }
    } else {
      link?.destroy();
    }
    const left = [...(delivered ? [] : this.unconfirmed.drain()), ...this.queue.drain()];
    for (const entry of left) this.spill(entry.record, 'shutdown');
    this.reportSpills();
    this.resolveWaiters();
  }

  private totalSpilled(): number {
    return Object.values(this.spilled).reduce((a, b) => a + b, 0);
  }

  private spill(record: AuditRecord, reason: SpillReason): void {
    this.options.spill.write(record);
    this.spilled[reason]++;
    const first = this.totalSpilled() === 1;
    this.unreported[reason] = (this.unreported[reason] ?? 0) + 1;
    if (first) this.reportSpills();
    else if (!this.reportTimer && !this.closed) {
      this.reportTimer = setTimeout(() => {
        this.reportTimer = null;
        this.reportSpills();
      }, this.options.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
      this.reportTimer.unref();
    }
  }

  private reportSpills(): void {
    const counts = this.unreported;
    this.unreported = {};
    if (Object.keys(counts).length === 0) return;
    this.options.log.warn(
      { spilled: counts, spilled_total: this.totalSpilled(), queued_records: this.queue.length, connected: this.link !== null },
      'audit records written to audit.file instead of the syslog collector',
    );
  }

  private connect(): void {
    if (this.connecting || this.link || this.closed) return;
    this.connecting = true;
    this.options.connect().then(
      (link) => {
        this.connecting = false;
        if (this.closed) {
          link.destroy();
          return;
        }
        this.link = link;
        this.attempts = 0;
        this.since = new Date(this.clock());
        this.quietSince = this.clock();
        if (this.everConnected) this.options.log.info({ resending: this.queue.length }, 'syslog collector reachable again: sending the buffered audit records');
        else this.options.log.info({}, 'syslog collector connected');
        this.everConnected = true;
        link.onClose((err) => this.lost(link, err));
        this.pump();
      },
      (err: Error) => {
        this.connecting = false;
        this.noteError(err, !this.everConnected && this.attempts === 0);
        this.retry();
      },
    );
  }

  private noteError(err: Error, announce: boolean): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    if (announce || code !== this.lastError) {
      this.options.log.warn({ error: code, queued_records: this.queue.length }, 'syslog collector unreachable: audit records wait in the buffer (bounded; the rest go to audit.file)');
    }
    this.lastError = code;
  }

  private retry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = Math.min(100 * 2 ** this.attempts, MAX_BACKOFF_MS);
    this.attempts++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  /** The connection failed or was closed by the collector: replay what may not have arrived. */
  private lost(link: SyslogLink, err: Error | null): void {
    if (this.link !== link) return;
    this.link = null;
    this.waitingDrain = false;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.since = new Date(this.clock());
    link.destroy();
    const replay = this.unconfirmed.drain();
    for (const entry of replay) entry.resend = true;
    this.queue.unshiftAll(replay);
    // Replayed records come first; what no longer fits is the newest, and spills.
    while (this.queue.bytes > this.options.bufferBytes) {
      const newest = this.queue.pop();
      if (!newest) break;
      this.spill(newest.record, 'overflow');
    }
    this.noteError(err ?? new Error('closed by the collector'), true);
    this.resolveWaiters();
    if (!this.closed) this.retry();
  }

  private pump(): void {
    const link = this.link;
    if (!link) {
      this.connect();
      return;
    }
    while (!this.waitingDrain && this.link === link) {
      const entry = this.queue.shift();
      if (!entry) break;
      entry.sentAt = this.clock();
      if (entry.resend) this.counts.resent++;
      else this.counts.sent++;
      if (link.reliable) this.unconfirmed.push(entry);
      const more = link.send(entry.message, () => this.spill(entry.record, 'send_failed'));
      if (!more) {
        this.waitingDrain = true;
        this.stallTimer = setTimeout(() => {
          if (this.link !== link || !this.waitingDrain) return;
          this.options.log.warn({ stalled_ms: STALL_TIMEOUT_MS }, 'syslog collector takes nothing: dropping the connection and sending again on a new one');
          link.destroy();
        }, STALL_TIMEOUT_MS);
        this.stallTimer.unref();
        link.onDrain(() => {
          if (this.stallTimer) clearTimeout(this.stallTimer);
          this.stallTimer = null;
          if (this.link !== link) return;
          this.waitingDrain = false;
          this.quietSince = this.clock();
          this.pump();
        });
      }
    }
    this.retire();
    if (this.queue.length === 0) this.resolveWaiters();
  }

  /** Forgets records the connection has carried long enough without stalling (see CONFIRM_AFTER_MS). */
  private retire(): void {
    const cutoff = this.clock() - CONFIRM_AFTER_MS;
    if (!this.waitingDrain && this.quietSince < cutoff) {
      for (let entry = this.unconfirmed.peek(); entry && entry.sentAt < cutoff; entry = this.unconfirmed.peek()) this.unconfirmed.shift();
    }
    // Memory stays bounded even on a link that stalls for good: the oldest are let go first.
    while (this.unconfirmed.bytes > this.options.bufferBytes) this.unconfirmed.shift();
    if (this.unconfirmed.length > 0 && !this.retireTimer && !this.closed) {
      this.retireTimer = setTimeout(() => {
        this.retireTimer = null;
        this.retire();
      }, CONFIRM_AFTER_MS);
      this.retireTimer.unref();
    }
  }

  private resolveWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private clearTimers(): void {
    for (const timer of [this.retryTimer, this.retireTimer, this.reportTimer, this.stallTimer]) if (timer) clearTimeout(timer);
    this.retryTimer = null;
    this.stallTimer = null;
    this.retireTimer = null;
    this.reportTimer = null;
  }
}
