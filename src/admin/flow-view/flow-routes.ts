import type { IncomingMessage, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import { compileFilter, FilterError } from '../../audit/record-filter';
import type { Logger } from '../../logging/logger';
import { FLOWS_PAGE } from './flows-page';
import { FLOWS_SCRIPT } from './flows-script';
import type { FlowEntry, RecentFlows } from './recent-flows';

export interface FlowViewOptions {
  readonly recent: RecentFlows;
  /** Client address blocks allowed to see traffic (flow_view.allow). */
  readonly allow: readonly string[];
  readonly logger: Logger;
}

/** Live streams at once; each costs a JSON encoding per matching record. */
const MAX_STREAMS = 16;
/** A stream whose client reads slower than records arrive drops records beyond this, and says so. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const PING_MS = 15_000;
const MAX_LIST = 1000;

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // One same-origin script, no inline code, no external anything; the data comes from this listener.
  'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } as const;

type Block = [ipaddr.IPv4 | ipaddr.IPv6, number];

function parseBlocks(allow: readonly string[]): Block[] {
  return allow.map((text) => {
    if (text.includes('/')) return ipaddr.parseCIDR(text);
    const address = ipaddr.parse(text);
    return [address, address.kind() === 'ipv4' ? 32 : 128] as Block;
  });
}

function inBlock(address: ipaddr.IPv4 | ipaddr.IPv6, block: ipaddr.IPv4 | ipaddr.IPv6, bits: number): boolean {
  if (address.kind() === 'ipv4' && block.kind() === 'ipv4') return (address as ipaddr.IPv4).match(block as ipaddr.IPv4, bits);
  if (address.kind() === 'ipv6' && block.kind() === 'ipv6') return (address as ipaddr.IPv6).match(block as ipaddr.IPv6, bits);
  return false;
}

function send(res: ServerResponse, status: number, headers: Record<string, string | number>, body: string, head: boolean): void {
  const payload = Buffer.from(body);
  res.writeHead(status, { ...headers, 'content-length': payload.length });
  res.end(head ? undefined : payload);
}

/**
 * The flow view: /flows (a page), /flows.js (its script), /flows/records (recent records as
 * JSON), /flows/events (new records as server-sent events) and /flows/flow/<flow_id> (one flow's
 * records). Filters are the `tollgate tail --filter` language. Only clients in `flow_view.allow`
 * (loopback by default) get anything: the view shows who went where.
 */
export class FlowView {
  private readonly blocks: Block[];

  constructor(private readonly options: FlowViewOptions) {
    this.blocks = parseBlocks(options.allow);
  }

  handles(path: string): boolean {
    return path === '/flows' || path === '/flows.js' || path.startsWith('/flows/');
  }

  isAllowed(remoteAddress: string | undefined): boolean {
    if (!remoteAddress) return false;
    let address: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      address = ipaddr.process(remoteAddress);
    } catch {
      return false;
    }
    return this.blocks.some(([block, bits]) => inBlock(address, block, bits));
  }

  route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void {
    const head = req.method === 'HEAD';
    if (!this.isAllowed(req.socket.remoteAddress)) {
      this.options.logger.warn({ client: req.socket.remoteAddress, path }, 'flow view refused: client not in flow_view.allow');
      send(res, 403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, 'forbidden: this address is not in flow_view.allow\n', head);
      return;
    }
    if (path === '/flows') {
      send(res, 200, PAGE_HEADERS, FLOWS_PAGE, head);
      return;
    }
    if (path === '/flows.js') {
      send(res, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }, FLOWS_SCRIPT, head);
      return;
    }
    let keep: (entry: FlowEntry) => boolean;
    try {
      keep = compileFilter(query.get('filter') ?? '');
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      send(res, 400, JSON_HEADERS, JSON.stringify({ error: err.message }), head);
      return;
    }
    if (path === '/flows/records') {
      const limit = Math.min(MAX_LIST, Math.max(1, Number(query.get('limit') ?? 200) || 200));
      send(res, 200, JSON_HEADERS, JSON.stringify({ records: this.options.recent.list(keep, limit), capacity: this.options.recent.capacity }), head);
      return;
    }
    if (path === '/flows/events') {
      this.stream(res, keep, head);
      return;
    }
    const flow = /^\/flows\/flow\/([A-Za-z0-9_-]{1,64})$/.exec(path);
    if (flow) {
      send(res, 200, JSON_HEADERS, JSON.stringify({ flow_id: flow[1], records: this.options.recent.flow(flow[1]!) }), head);
      return;
    }
    send(res, 404, { 'content-type': 'text/plain' }, 'not found; see /flows\n', head);
  }

  /** Server-sent events: one `data:` per new record that passes the filter. */
  private stream(res: ServerResponse, keep: (entry: FlowEntry) => boolean, head: boolean): void {
    const { recent } = this.options;
    if (recent.subscriberCount >= MAX_STREAMS) {
      send(res, 503, { 'content-type': 'text/plain', 'retry-after': 5 }, 'too many live views open\n', head);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    if (head) {
      res.end();
      return;
    }
    res.write('retry: 2000\n\n');
    let dropped = 0;
    const unsubscribe = recent.subscribe((entry) => {
      // Called on the audit write path: never throw into it, never block it.
      try {
        if (!keep(entry)) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          dropped++;
          return;
        }
        if (dropped > 0) {
          res.write(`event: dropped\ndata: ${dropped}\n\n`);
          dropped = 0;
        }
        res.write(`id: ${entry.seq}\ndata: ${JSON.stringify(entry)}\n\n`);
      } catch {
        res.destroy();
      }
    });
    const ping = setInterval(() => res.write(': ping\n\n'), PING_MS);
    ping.unref();
    res.on('close', () => {
      unsubscribe();
      clearInterval(ping);
    });
  }
}
