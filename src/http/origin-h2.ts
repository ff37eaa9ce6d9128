import http2 from 'node:http2';
import { PassThrough } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { GatewayError } from '../errors/gateway-error';
import { classifyOriginError } from '../egress/errors';
import type { H2Sessions } from '../egress/h2-sessions';
import { originTlsFacts } from '../egress/origin-tls';
import { targetText } from '../protocol/target';
import { type ExchangeHandlers, type OriginExchange, type OriginLeg, type OriginRequest, originSilence } from './origin-leg';

/** Request header fields for an HTTP/2 origin: pseudo-headers first, names lower case. */
function h2RequestHeaders(method: string, path: string, rawHeaders: readonly string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': 'https' };
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (name === 'host') {
      out[':authority'] = value;
      continue;
    }
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else out[name] = Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  return out;
}

/** An HTTP/2 response header object as a flat raw list, without pseudo-headers. */
function rawFromH2Headers(headers: http2.IncomingHttpHeaders): string[] {
  const raw: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else raw.push(name, String(value));
  }
  return raw;
}

/**
 * The HTTP/2 origin leg: one stream on the origin's shared session, for HTTP/2 clients of h2
 * origins. The session may still be connecting when the request starts: the body is buffered
 * (with backpressure) in a pass-through until the stream exists.
 */
export class Http2OriginLeg implements OriginLeg {
  constructor(private readonly sessions: H2Sessions) {}

  start(request: OriginRequest, handlers: ExchangeHandlers): OriginExchange {
    const origin = `https://${targetText(request.target)}`;
    const body = new PassThrough();
    let stream: http2.ClientHttp2Stream | null = null;
    let done = false;
    let responded = false;
    const fail = (err: NodeJS.ErrnoException): void => {
      if (done) return;
      done = true;
      body.destroy();
      handlers.onError(classifyOriginError(err, origin));
    };
    this.sessions.session(request.target, request.servername).then((session) => {
      if (done) return;
      const noBody = request.framing.kind === 'none';
      try {
        stream = session.request(h2RequestHeaders(request.method, request.path, request.headers), { endStream: noBody });
      } catch (err) {
        fail(err as NodeJS.ErrnoException);
        return;
      }
      const own = stream;
      own.on('error', fail);
      // A stream can end without a response and without an error (its session went away under
      // it, e.g. the origin closed the connection): the client must still get an answer.
      own.on('close', () => {
        // An origin that answered in full may close the stream before reading the whole upload
        // (RST_STREAM NO_ERROR, RFC 9113 8.1): the rest of the client's body goes nowhere, but
        // is still read, so the client's stream completes instead of stalling on flow control.
        if (own.readableEnded && !body.writableFinished) {
          body.unpipe(own);
          body.resume();
        }
        if (done) return;
        if (!responded) {
          fail(new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${origin} closed the HTTP/2 stream before responding`));
          return;
        }
        if (!own.readableEnded) fail(new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${origin} reset the HTTP/2 stream mid-body (code ${own.rstCode ?? '?'})`));
      });
      own.on('end', () => (done = true));
      own.on('response', (headers) => {
        if (done) return;
        responded = true;
        const status = Number(headers[':status'] ?? 502);
        const rawHeaders = rawFromH2Headers(headers);
        handlers.onResponse({
          status,
          statusMessage: undefined,
          httpVersion: '2.0',
          rawHeaders,
          body: own,
          // 'end' comes only with END_STREAM; a stream reset by the origin is destroyed without it.
          isComplete: () => own.readableEnded && !own.aborted && (own.rstCode === undefined || own.rstCode === http2.constants.NGHTTP2_NO_ERROR),
          tls: session.socket ? originTlsFacts(session.socket as TLSSocket) : null,
        });
      });
      if (noBody) body.resume();
      else body.pipe(own);
    }, fail);
    return {
      body,
      cancel: () => {
        done = true;
        body.destroy();
        if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
      noResponse: (ms) => originSilence(origin, ms),
    };
  }
}
