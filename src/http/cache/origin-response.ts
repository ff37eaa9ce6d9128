import { type IncomingMessage, STATUS_CODES } from 'node:http';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type CachePolicy from 'http-cache-semantics';
import { HOP_BY_HOP } from '../headers';

/**
 * An origin's response as the cache sees it, whichever protocol the origin leg spoke: HTTP/1.1
 * (an IncomingMessage) or HTTP/2 (a client stream and its header block). The header object is
 * what gets stored, so it holds end-to-end fields only — never HTTP/2 pseudo-headers nor
 * hop-by-hop fields — and an entry filled over one protocol can be served over the other.
 */
export interface OriginResponse {
  readonly status: number;
  /** Reason phrase; HTTP/2 has none (RFC 9113 8.3.2), so the standard one stands in. */
  readonly statusMessage: string;
  readonly httpVersion: string;
  readonly headers: CachePolicy.Headers;
  readonly body: Readable;
  /** True once the whole body arrived: not cut by an origin reset or close. */
  isComplete(): boolean;
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

function reasonFor(status: number, given: string | undefined): string {
  return given !== undefined && given !== '' ? given : (STATUS_CODES[status] ?? '');
}

export function fromHttp1Response(upRes: IncomingMessage): OriginResponse {
  const status = upRes.statusCode ?? 502;
  return {
    status,
    statusMessage: reasonFor(status, upRes.statusMessage),
    httpVersion: upRes.httpVersion,
    headers: storableHeaders(upRes.rawHeaders),
    body: upRes,
    isComplete: () => upRes.complete,
  };
}

export function fromHttp2Response(stream: http2.ClientHttp2Stream, rawHeaders: readonly string[], status: number): OriginResponse {
  return {
    status,
    statusMessage: reasonFor(status, undefined),
    httpVersion: '2.0',
    headers: storableHeaders(rawHeaders),
    body: stream,
    // 'end' comes only with END_STREAM; a stream reset by the origin is destroyed without it.
    isComplete: () => stream.readableEnded && !stream.aborted && (stream.rstCode === undefined || stream.rstCode === http2.constants.NGHTTP2_NO_ERROR),
  };
}
