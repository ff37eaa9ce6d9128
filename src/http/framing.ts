import { Http2ServerRequest } from 'node:http2';
import type { InboundRequest } from './inbound';

/**
 * How a request body is delimited on the way to the origin (RFC 9112 section 6). Every body the
 * gateway forwards over HTTP/1.1 is framed explicitly: Node's client sends the body of a GET,
 * HEAD, DELETE or OPTIONS request without any framing unless told to, and an origin then parses
 * those bytes as the next request on the connection, one no rule ever saw (request smuggling).
 */
export type BodyFraming = { readonly kind: 'none' } | { readonly kind: 'length'; readonly length: number } | { readonly kind: 'chunked' };

const NO_BODY: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });

/**
 * The framing of an inbound request's body. HTTP/1: `Transfer-Encoding: chunked` (the only
 * coding the front-ends accept) or `Content-Length`, both already validated by Node's strict
 * parser; neither means no body. HTTP/2 frames bodies in DATA frames: a declared
 * `content-length` (which nghttp2 holds the stream to) keeps its length, otherwise a stream
 * that did not end with its HEADERS has a body of unknown length, forwarded chunked.
 */
export function requestBodyFraming(req: InboundRequest): BodyFraming {
  const length = req.headers['content-length'];
  if (req instanceof Http2ServerRequest) {
    if (length !== undefined) return lengthFraming(length);
    return req.stream.endAfterHeaders ? NO_BODY : CHUNKED;
  }
  if (req.headers['transfer-encoding'] !== undefined) return CHUNKED;
  return length === undefined ? NO_BODY : lengthFraming(length);
}

function lengthFraming(value: string): BodyFraming {
  const length = Number(value);
  return length === 0 ? NO_BODY : { kind: 'length', length };
}

/**
 * The origin-bound HTTP/1.1 header list with the framing stated: any `Content-Length` or
 * `Transfer-Encoding` the list carries is replaced by the one that matches `framing`, so Node
 * writes the body with exactly that framing (it chunk-encodes when the list says chunked).
 */
export function withHttp1Framing(rawHeaders: readonly string[], framing: BodyFraming): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  if (framing.kind === 'length') out.push('Content-Length', String(framing.length));
  else if (framing.kind === 'chunked') out.push('Transfer-Encoding', 'chunked');
  return out;
}
