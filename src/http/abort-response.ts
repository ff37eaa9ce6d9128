import { Http2ServerResponse, constants as h2 } from 'node:http2';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { InboundResponse } from './inbound';

/**
 * Ends a response whose head has been sent in a way no client can take for a complete one. A
 * plain close is not enough: an HTTP/1.0 client, or any response without Content-Length or
 * chunked framing, reads a FIN as the end of the body, so a body the gateway cut (a size rule,
 * an origin that failed mid-body) would arrive truncated yet look whole. So HTTP/1 connections
 * are reset (RST) and HTTP/2 streams are reset with INTERNAL_ERROR (RFC 9113 section 8.1: a
 * stream reset before END_STREAM is an incomplete response).
 */
export function abortResponse(res: InboundResponse, socket: Socket | null = null): void {
  if (res instanceof Http2ServerResponse) {
    if (!res.stream.destroyed) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const connection = socket ?? res.socket;
  // Reset first: destroying the response closes its socket with a FIN.
  if (connection) resetConnection(connection);
  res.destroy();
}

/**
 * Sends a TCP reset on the client's connection. Inside an inspected tunnel the socket is TLS
 * over the client's TCP socket (`_parent`, which Node keeps on every TLSSocket it wraps around
 * a socket); only a TCP handle can reset, and TLS itself has no "abort" a client must heed.
 */
function resetConnection(socket: Socket): void {
  const tcp = socket instanceof TLSSocket ? ((socket as TLSSocket & { _parent?: Socket })._parent ?? socket) : socket;
  if (!tcp.destroyed) {
    try {
      tcp.resetAndDestroy();
    } catch {
      // Not a TCP handle (e.g. a socket already detached): a close is all that is left.
      tcp.destroy();
    }
  }
  socket.destroy();
}
