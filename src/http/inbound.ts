import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

/**
 * A request as the client sent it, over HTTP/1.1 or (decrypted, through node:http2's
 * compatibility API) HTTP/2: the one forwarding path serves both.
 */
export type InboundRequest = IncomingMessage | Http2ServerRequest;
export type InboundResponse = ServerResponse | Http2ServerResponse;

/** HTTP/2 has no reason phrase (RFC 9113 8.3.2); Node warns when one is given. */
export function writeResponseHead(res: InboundResponse, status: number, message: string | undefined, rawHeaders: string[]): void {
  if (res instanceof ServerResponse) res.writeHead(status, message, rawHeaders);
  else res.writeHead(status, rawHeaders as unknown as Parameters<Http2ServerResponse['writeHead']>[1]);
}

/**
 * The header fields of a request as an HTTP/1.1 message would carry them: HTTP/2
 * pseudo-header fields (`:method`, `:path`, ...) removed, and the separate `cookie` fields that
 * HTTP/2 allows joined into one with "; " (RFC 9113 8.2.3). HTTP/1.1 lists pass through as
 * they are.
 */
export function withoutPseudoHeaders(rawHeaders: readonly string[]): readonly string[] {
  if (rawHeaders.length === 0 || !rawHeaders.some((name, i) => i % 2 === 0 && name.startsWith(':'))) return rawHeaders;
  const out: string[] = [];
  let cookieAt = -1;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.startsWith(':')) continue;
    if (name.toLowerCase() === 'cookie') {
      if (cookieAt >= 0) {
        out[cookieAt + 1] = `${out[cookieAt + 1]!}; ${rawHeaders[i + 1]!}`;
        continue;
      }
      cookieAt = out.length;
    }
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}
