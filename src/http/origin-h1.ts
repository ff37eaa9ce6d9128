import type { Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { classifyOriginError } from '../egress/errors';
import type { H1Carrier, H1Controller, H1Handler, H1Pools } from '../egress/h1-pools';
import { originTlsFacts } from '../egress/origin-tls';
import { targetText } from '../protocol/target';
import type { GatewayError } from '../errors/gateway-error';
import { type ExchangeHandlers, type OriginExchange, type OriginLeg, type OriginRequest, originSilence } from './origin-leg';

function tlsOf(socket: Socket | null): ReturnType<typeof originTlsFacts> | null {
  return socket instanceof TLSSocket ? originTlsFacts(socket) : null;
}

function textOf(raw: readonly (Buffer | string)[]): string[] {
  const out = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const field = raw[i]!;
    out[i] = typeof field === 'string' ? field : field.toString('latin1');
  }
  return out;
}

/**
 * The fields for the HTTP/1.1 client: Content-Length stated for a body of known length; for a
 * chunked one neither field (the client frames a body of unknown length as chunked itself).
 */
function withFraming(request: OriginRequest): string[] {
  const raw = request.headers;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  if (request.framing.kind === 'length') out.push('Content-Length', String(request.framing.length));
  return out;
}

/**
 * One exchange on the HTTP/1.1 leg, as undici's dispatch handler: the response head is handed
 * to the forwarder with its body as a Readable that pauses the connection when the client is
 * slow (backpressure); 1xx interim responses are skipped; a 101 hands the connection over.
 */
class H1Exchange implements H1Handler, OriginExchange {
  readonly body: PassThrough | null;
  carrier: H1Carrier | null = null;
  private controller: H1Controller | null = null;
  private response: Readable | null = null;
  private complete = false;
  /** No more events for the forwarder: the exchange ended, failed, or was cancelled. */
  private done = false;
  /** Inside dispatch(): an error raised there (a field undici refuses) is reported a tick later. */
  starting = true;

  constructor(
    private readonly origin: string,
    private readonly handlers: ExchangeHandlers,
    hasBody: boolean,
  ) {
    this.body = hasBody ? new PassThrough() : null;
  }

  noResponse(ms: number): GatewayError {
    return this.carrier?.parentSilence(ms) ?? originSilence(this.origin, ms);
  }

  cancel(): void {
    this.done = true;
    this.controller?.abort(new Error('cancelled by the gateway'));
    this.response?.destroy();
    this.body?.destroy();
  }

  onRequestStart(controller: H1Controller): void {
    this.controller = controller;
    if (this.done) controller.abort(new Error('cancelled by the gateway'));
  }

  onResponseStart(controller: H1Controller, status: number, _headers: unknown, statusMessage?: string): void {
    // Interim responses (102, 103) carry nothing the client needs from a gateway: skipped.
    if (status < 200 || this.done) return;
    const response = new Readable({ read: () => controller.resume() });
    this.response = response;
    this.handlers.onResponse({
      status,
      statusMessage,
      httpVersion: '1.1',
      rawHeaders: textOf((controller as { rawHeaders?: Buffer[] }).rawHeaders ?? []),
      body: response,
      isComplete: () => this.complete,
      tls: tlsOf(this.carrier?.socket ?? null),
    });
  }

  onResponseData(controller: H1Controller, chunk: Buffer): void {
    if (this.response && !this.response.push(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.complete = true;
    this.done = true;
    this.response?.push(null);
  }

  onResponseError(_controller: H1Controller, err: Error): void {
    if (this.done) return;
    this.done = true;
    const error = classifyOriginError(err as NodeJS.ErrnoException, this.origin);
    // The forwarder hears of a failure only after start() returned, as for any other.
    if (this.starting) queueMicrotask(() => this.handlers.onError(error));
    else this.handlers.onError(error);
    // Destroyed without an error: the forwarder already heard it, and the pipe only stops.
    this.response?.destroy();
  }

  onRequestUpgrade(controller: H1Controller, status: number, _headers: unknown, socket: Socket): void {
    if (this.done) {
      socket.destroy();
      return;
    }
    this.done = true;
    this.handlers.onUpgrade({
      status,
      statusMessage: 'Switching Protocols',
      httpVersion: '1.1',
      rawHeaders: textOf((controller as { rawHeaders?: Buffer[] }).rawHeaders ?? []),
      socket,
      tls: tlsOf(socket),
    });
  }
}

/** The HTTP/1.1 origin leg: one request on a keep-alive connection from the egress pools. */
export class Http1OriginLeg implements OriginLeg {
  constructor(private readonly pools: H1Pools) {}

  start(request: OriginRequest, handlers: ExchangeHandlers): OriginExchange {
    const exchange = new H1Exchange(`${request.scheme}://${targetText(request.target)}`, handlers, request.framing.kind !== 'none' && !request.upgrade);
    exchange.carrier = this.pools.dispatch(
      {
        target: request.target,
        tls: request.scheme === 'https' ? { servername: request.servername, verifyCertificate: request.verifyCertificate } : null,
        method: request.method,
        path: request.path,
        headers: withFraming(request),
        body: exchange.body,
        bodyLengthStated: request.framing.kind === 'length',
        // Upgrade and Connection are hop-by-hop and were dropped; a WebSocket handshake asks the
        // origin for the same upgrade on the gateway's own hop (RFC 9110 7.8).
        upgrade: request.upgrade ? 'websocket' : null,
      },
      exchange,
    );
    exchange.starting = false;
    return exchange;
  }
}
