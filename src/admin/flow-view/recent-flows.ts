import type { AuditRecord } from '../../audit/record-fields';
import type { RecordWriter } from '../../audit/sink';

/**
 * What the flow view keeps of an audit record: its facts without the header maps (memory: a
 * request's headers may be 100 KiB; the audit file has them), long strings cut. Values are
 * already redacted, as in the audit trail; bodies are never in a record to begin with.
 */
export type FlowEntry = Readonly<Record<string, unknown>> & { readonly seq: number; readonly type: string };

/** Fields left out of the view, and how long a string may be. */
const LEFT_OUT = new Set(['request_headers', 'response_headers']);
const MAX_STRING = 2048;

function summarise(record: AuditRecord, seq: number): FlowEntry {
  const entry: Record<string, unknown> = { seq };
  for (const [key, value] of Object.entries(record)) {
    if (LEFT_OUT.has(key)) continue;
    entry[key] = typeof value === 'string' && value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  }
  if (record.type === 'request') {
    const type = record.response_headers?.['content-type'];
    const text = Array.isArray(type) ? type[0] : type;
    entry.content_type = typeof text === 'string' ? text.split(';')[0]!.trim().slice(0, 100) : null;
  }
  return entry as FlowEntry;
}

/**
 * The most recent audit records, for /flows: a ring of `capacity` entries fed by the same
 * writes as the audit sink, and live subscribers (the page's event streams). Per process: with
 * `workers` above 1, each worker keeps its own.
 */
export class RecentFlows {
  private readonly ring: (FlowEntry | undefined)[];
  private next = 0;
  private seq = 0;
  private readonly subscribers = new Set<(entry: FlowEntry) => void>();

  constructor(readonly capacity: number) {
    this.ring = new Array(capacity);
  }

  add(record: AuditRecord): void {
    const entry = summarise(record, ++this.seq);
    this.ring[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
    for (const subscriber of this.subscribers) subscriber(entry);
  }

  /** Newest first, those `keep` accepts, at most `limit`. */
  list(keep: (entry: FlowEntry) => boolean, limit: number): FlowEntry[] {
    const out: FlowEntry[] = [];
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (!entry) break;
      if (keep(entry)) out.push(entry);
    }
    return out;
  }

  /** One flow's records still in the ring, oldest first: its requests, then its connection record. */
  flow(flowId: string): FlowEntry[] {
    return this.list((e) => e.flow_id === flowId, this.capacity).reverse();
  }

  subscribe(onEntry: (entry: FlowEntry) => void): () => void {
    this.subscribers.add(onEntry);
    return () => {
      this.subscribers.delete(onEntry);
    };
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

/** A RecordWriter that writes to `sink` and keeps a summary in `recent`. */
export function teeRecords(sink: RecordWriter, recent: RecentFlows): RecordWriter {
  return {
    write(record) {
      sink.write(record);
      recent.add(record);
    },
  };
}
