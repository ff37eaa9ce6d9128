import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { classifyOriginError } from '../egress/errors';
import type { H1Pools } from '../egress/h1-pools';
import { originTlsFacts } from '../egress/origin-tls';
import { targetText } from '../protocol/target';
import { fromHttp1Response } from './cache/origin-response';
import { withHttp1Framing } from './framing';
import type { ExchangeHandlers, OriginExchange, OriginLeg, OriginRequest } from './origin-leg';

function tlsOf(socket: Socket | null | undefined): ReturnType<typeof originTlsFacts> | null {
  return socket instanceof TLSSocket ? originTlsFacts(socket) : null;
}

/** The HTTP/1.1 origin leg: one request on a keep-alive connection from the egress pools. */
export class Http1OriginLeg implements OriginLeg {
  constructor(private readonly pools: H1Pools) {}

  start(request: OriginRequest, handlers: ExchangeHandlers): OriginExchange {
    const origin = `${request.scheme}://${targetText(request.target)}`;
    const headers = withHttp1Framing(request.headers, request.framing);
    // Upgrade and Connection are hop-by-hop and were dropped; a WebSocket handshake asks the
    // origin for the same upgrade on the gateway's own hop (RFC 9110 7.8).
    if (request.upgrade) headers.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
    const upstream = this.pools.request({
      target: request.target,
      tls: request.scheme === 'https' ? { servername: request.servername, verifyCertificate: request.verifyCertificate } : null,
      method: request.method,
      path: request.path,
      headers,
    });
    let done = false;
    let response: IncomingMessage | null = null;
    const fail = (err: NodeJS.ErrnoException): void => {
      if (done) return;
      done = true;
      handlers.onError(classifyOriginError(err, origin));
    };
    upstream.on('error', fail);
    upstream.on('response', (res: IncomingMessage) => {
      if (done) {
        res.destroy();
        return;
      }
      response = res;
      // The body may still fail: an origin reset or close mid-body.
      res.on('error', fail);
      res.on('aborted', () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
      res.on('end', () => (done = true));
      handlers.onResponse({
        status: res.statusCode ?? 502,
        statusMessage: res.statusMessage,
        httpVersion: res.httpVersion,
        rawHeaders: res.rawHeaders,
        body: res,
        cacheView: fromHttp1Response(res),
        tls: tlsOf(res.socket),
      });
    });
    upstream.on('upgrade', (res: IncomingMessage, socket, head: Buffer) => {
      if (done) {
        socket.destroy();
        return;
      }
      done = true;
      handlers.onUpgrade({ response: res, socket, head, tls: tlsOf(socket as Socket) });
    });
    return {
      body: upstream,
      cancel: () => {
        done = true;
        response?.destroy();
        upstream.destroy();
      },
    };
  }
}
