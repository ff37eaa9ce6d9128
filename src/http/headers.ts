/**
 * Header rewriting for forwarded messages (RFC 9110 section 7.6). Works on Node's flat
 * `rawHeaders` arrays ([name, value, name, value, ...]) so names keep their case and order and
 * repeated fields stay separate; no per-header objects are allocated.
 */

/**
 * Hop-by-hop fields (RFC 9110 7.6.1) plus the proxy's own ones: never forwarded, never stored
 * in the cache. The one list of them (fields a Connection header names are added per message).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * Also dropped from requests: `host` (rewritten from the target), `expect` (the gateway answers
 * 100-continue itself; forwarding it would make the client see two interim responses).
 */
const REQUEST_ONLY_DROPPED = new Set(['host', 'expect']);

function connectionTokens(rawHeaders: readonly string[]): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name === '') continue;
      tokens ??= new Set();
      tokens.add(name);
    }
  }
  return tokens;
}

/**
 * The fields of a message without its hop-by-hop ones (HOP_BY_HOP and those its Connection
 * header names). Applied to what a client or origin sent *before* the gateway adds or edits
 * fields (HTTP rules' set_header, forwarding fields), so a `Connection` header can only ever
 * remove fields its sender sent, never one the gateway set.
 */
export function withoutHopByHop(rawHeaders: readonly string[]): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}

function viaValue(existing: string | null, httpVersion: string, pseudonym: string): string {
  const own = `${httpVersion} ${pseudonym}`;
  return existing === null ? own : `${existing}, ${own}`;
}

/**
 * Copies fields already without their sender's hop-by-hop ones (withoutHopByHop ran before any
 * edit), merging Via. Names in HOP_BY_HOP are still never copied: an edit may have added one.
 */
function copyEndToEnd(rawHeaders: readonly string[], extraDropped: ReadonlySet<string> | null, out: string[]): string | null {
  let via: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || extraDropped?.has(lower)) continue;
    if (lower === 'via') {
      via = via === null ? rawHeaders[i + 1]! : `${via}, ${rawHeaders[i + 1]!}`;
      continue;
    }
    out.push(name, rawHeaders[i + 1]!);
  }
  return via;
}

export interface RequestHeaderOptions {
  /** Host header value for the origin: the target authority, port omitted when default. */
  readonly host: string;
  readonly httpVersion: string;
  readonly via: string;
  /** Client address to append to X-Forwarded-For, or null to leave the header untouched. */
  readonly forwardedFor: string | null;
}

/** The fields to send an origin: `rawHeaders` are the client's end-to-end ones (withoutHopByHop), as edited by the rules. */
export function forwardRequestHeaders(rawHeaders: readonly string[], options: RequestHeaderOptions): string[] {
  const out: string[] = ['Host', options.host];
  const via = copyEndToEnd(rawHeaders, REQUEST_ONLY_DROPPED, out);
  out.push('Via', viaValue(via, options.httpVersion, options.via));
  if (options.forwardedFor !== null) {
    let existing: string | null = null;
    for (let i = 2; i < out.length; i += 2) {
      if (out[i]!.toLowerCase() === 'x-forwarded-for') {
        existing = out[i + 1]!;
        out.splice(i, 2);
        break;
      }
    }
    out.push('X-Forwarded-For', existing === null ? options.forwardedFor : `${existing}, ${options.forwardedFor}`);
  }
  return out;
}

/** The fields to send a client: `rawHeaders` are the origin's end-to-end ones (withoutHopByHop), as edited by the rules. */
export function forwardResponseHeaders(rawHeaders: readonly string[], httpVersion: string, pseudonym: string): string[] {
  const out: string[] = [];
  const via = copyEndToEnd(rawHeaders, null, out);
  out.push('Via', viaValue(via, httpVersion, pseudonym));
  return out;
}

/** The first value of a header in a raw list, case-insensitive. */
export function rawHeaderValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lowerName) return rawHeaders[i + 1];
  return undefined;
}

export function countRawHeader(rawHeaders: readonly string[], lowerName: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lowerName) count++;
  return count;
}

/** True when a request carries more header fields than `http.max_headers` allows. */
export function tooManyHeaders(req: { readonly rawHeaders: readonly string[] }, maxHeaders: number): boolean {
  return req.rawHeaders.length / 2 > maxHeaders;
}

/**
 * Whether a Via header already lists `pseudonym` as a received-by (RFC 9110 7.6.3): the
 * request went through this gateway (or one sharing its name) before, so forwarding it again
 * would loop.
 */
export function viaNamesUs(rawHeaders: readonly string[], pseudonym: string): boolean {
  const own = pseudonym.toLowerCase();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'via') continue;
    for (const entry of rawHeaders[i + 1]!.split(',')) {
      // "1.1 tollgate (comment)": protocol, then received-by, then an optional comment.
      const receivedBy = entry.trim().split(/\s+/)[1];
      if (receivedBy !== undefined && receivedBy.toLowerCase() === own) return true;
    }
  }
  return false;
}
