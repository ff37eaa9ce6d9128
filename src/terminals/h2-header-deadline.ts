import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';

/** Why a session ran out of `limits.header_timeout`, and the last stream it delivered (for GOAWAY). */
export interface H2HeaderTimeout {
  readonly reason: string;
  readonly lastStreamId: number;
}

/**
 * `limits.header_timeout` for a decrypted HTTP/2 session, which Node's http2 server does not
 * enforce. A header block arriving in pieces (HEADERS without END_HEADERS, then CONTINUATION
 * frames; or the HEADERS frame itself a few bytes at a time) produces no JS event until it is
 * complete, and on Node 20 neither partial frames nor PING, SETTINGS or WINDOW_UPDATE reset the
 * session's idle timer, so such a session was held until `limits.client_idle_timeout`.
 *
 * What is observable without putting a JS stream between the TLS socket and the session (which
 * would cost a copy and a callback for every HTTP/2 byte): nghttp2 counts a stream as processed
 * (`session.state.lastProcStreamID`) as soon as the 9-byte header of its HEADERS frame has
 * arrived, while Node emits 'stream' only once the block is complete. A processed stream that
 * was never delivered is a header block in progress. (A block nghttp2 refused as malformed also
 * leaves the two apart, until the next delivered stream: its session is treated the same way.)
 * The session is checked every half `header_timeout`, so nothing here runs per frame:
 *
 * - a header block still in progress at two consecutive checks (age between half and one
 *   `header_timeout`; a real client sends a block in one round trip) ends the session, whether
 *   or not other streams are open;
 * - a session that has not delivered a single request `header_timeout` after the TLS handshake
 *   ends too, like an HTTP/1.1 connection that never sends its first request line.
 *
 * What is left to an attacker: a session that has served a request may idle, PING or trickle
 * the first bytes of a HEADERS frame (up to 14: frame header, pad length and priority, before
 * nghttp2 begins it) until
 * `limits.client_idle_timeout`, which none of that resets; that holds no more than an idle
 * connection does, and it cost one complete request (forwarded and audited). CONTINUATION
 * floods are nghttp2's own business (it ends a session after 8 such frames).
 * What legitimate clients see: browsers keeping idle sessions for reuse, PING keep-alives and
 * long uploads or downloads are unaffected; only a session with no request at all within
 * `header_timeout` of its handshake (an unused preconnection) is closed, with a GOAWAY
 * (NO_ERROR), after which a client opens a new connection when it needs one.
 */
export function watchH2HeaderDeadline(session: ServerHttp2Session, headerTimeoutMs: number, onTimeout: (timeout: H2HeaderTimeout) => void): void {
  const checkMs = Math.max(1, Math.ceil(headerTimeoutMs / 2));
  let delivered = 0;
  let servedAny = false;
  let inProgressAtLastCheck = 0;
  let checks = 0;
  session.on('stream', (stream: ServerHttp2Stream) => {
    servedAny = true;
    if ((stream.id ?? 0) > delivered) delivered = stream.id ?? 0;
  });
  const timer = setInterval(() => {
    if (session.destroyed) {
      clearInterval(timer);
      return;
    }
    checks++;
    const processed = session.state.lastProcStreamID ?? 0;
    const inProgress = processed > delivered ? processed : 0;
    let reason: string | null = null;
    if (inProgress !== 0 && inProgress === inProgressAtLastCheck) reason = `the header block of HTTP/2 stream ${inProgress} was not completed`;
    else if (!servedAny && checks * checkMs >= headerTimeoutMs) reason = 'no HTTP/2 request header block was completed after the TLS handshake';
    inProgressAtLastCheck = inProgress;
    if (reason === null) return;
    clearInterval(timer);
    onTimeout({ reason, lastStreamId: delivered });
  }, checkMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
