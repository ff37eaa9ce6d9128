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

/** HTTP/2 pseudo-header fields (`:method`, `:path`, ...) are not header fields of a message. */
export function withoutPseudoHeaders(rawHeaders: readonly string[]): readonly string[] {
  if (rawHeaders.length === 0 || !rawHeaders.some((name, i) => i % 2 === 0 && name.startsWith(':'))) return rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (!rawHeaders[i]!.startsWith(':')) out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  return out;
}
