import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import type CachePolicy from 'http-cache-semantics';
import { HOP_BY_HOP } from '../headers';

/**
 * An origin's response head as an origin leg delivers it (http/origin-leg.ts's OriginReply has
 * this shape), whichever protocol it spoke: fields as received, body still streaming.
 */
export interface OriginResponseHead {
  readonly status: number;
  /** HTTP/1 reason phrase; undefined over HTTP/2, which has none. */
  readonly statusMessage: string | undefined;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  readonly body: Readable;
  /** True once the whole body arrived: not cut by an origin reset or close. */
  isComplete(): boolean;
}

/**
 * An origin's response as the cache stores it. The header object is what gets stored, so it
 * holds end-to-end fields only — never HTTP/2 pseudo-headers nor hop-by-hop fields — and an
 * entry filled over one protocol can be served over the other. Built only when the cache has a
 * use for the response (see `plainlyUnstorable`), and the header object only when first read.
 */
export class OriginResponse {
  private fields: CachePolicy.Headers | null = null;

  constructor(private readonly head: OriginResponseHead) {}

  get status(): number {
    return this.head.status;
  }

  /** Reason phrase; HTTP/2 has none (RFC 9113 8.3.2), so the standard one stands in. */
  get statusMessage(): string {
    const given = this.head.statusMessage;
    return given !== undefined && given !== '' ? given : (STATUS_CODES[this.head.status] ?? '');
  }

  get httpVersion(): string {
    return this.head.httpVersion;
  }

  get headers(): CachePolicy.Headers {
    this.fields ??= storableHeaders(this.head.rawHeaders);
    return this.fields;
  }

  get body(): Readable {
    return this.head.body;
  }

  isComplete(): boolean {
    return this.head.isComplete();
  }
}

/**
 * True when a shared cache certainly may not store this response, judged from the raw fields
 * without building a cache policy (most API traffic is `no-store`, `private` or sets a cookie):
 * Cache-Control `no-store` or `private` (RFC 9111 5.2.2.3, 5.2.2.7), Set-Cookie (never stored
 * here: one user's session must not reach the next), or `Vary: *`. A directive name found only
 * inside another directive's quoted value counts too: at worst a response goes uncached.
 */
export function plainlyUnstorable(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 10 && name.toLowerCase() === 'set-cookie') return true;
    if (name.length === 13 && name.toLowerCase() === 'cache-control') {
      for (const directive of rawHeaders[i + 1]!.split(',')) {
        const token = directive.split('=', 1)[0]!.trim().toLowerCase();
        if (token === 'no-store' || token === 'private') return true;
      }
    }
    if (name.length === 4 && name.toLowerCase() === 'vary' && rawHeaders[i + 1]!.split(',').some((v) => v.trim() === '*')) return true;
  }
  return false;
}

/**
 * A raw field list as an HTTP/1.1-style header object: names lower case, repeated fields joined
 * with ", " (Set-Cookie kept as a list, RFC 9110 5.3), pseudo-headers and hop-by-hop fields
 * (including those the Connection field names) left out.
 */
export function storableHeaders(rawHeaders: readonly string[]): CachePolicy.Headers {
  const listed = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) listed.add(token.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name.startsWith(':') || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    const value = rawHeaders[i + 1]!;
    const existing = out[name];
    if (name === 'set-cookie') out[name] = existing === undefined ? [value] : [...(existing as string[]), value];
    else out[name] = existing === undefined ? value : `${existing as string}, ${value}`;
  }
  return out;
}
