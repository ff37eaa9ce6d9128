import type { Duplex, Readable, Writable } from 'node:stream';
import type { OriginTlsFacts } from '../egress/origin-tls';
import { GatewayError } from '../errors/gateway-error';
import type { Target } from '../protocol/target';
import type { BodyFraming } from './framing';

/**
 * The origin side of one forwarded request, whichever protocol carries it: HTTP/1.1 on a pooled
 * connection (origin-h1.ts) or a stream on a shared HTTP/2 session (origin-h2.ts). Both take
 * their connections from the egress door, so they share its connect deadline, destination
 * guard and error mapping; the response deadline and limit accounting are the forwarder's, the
 * same for both. forward.ts never looks at which leg it used.
 */
export interface OriginRequest {
  readonly target: Target;
  readonly scheme: 'http' | 'https';
  /** SNI and verified name (https); null for an address target. */
  readonly servername: string | null;
  /** False only under a rule with `upstream_insecure`. */
  readonly verifyCertificate: boolean;
  readonly method: string;
  readonly path: string;
  /** The fields to send in HTTP/1.1 form, Host first; the HTTP/2 leg turns Host into :authority. */
  readonly headers: readonly string[];
  readonly framing: BodyFraming;
  /** A WebSocket handshake: only the HTTP/1.1 leg carries one. */
  readonly upgrade: boolean;
}

/** The origin's response head, with its body still streaming. */
export interface OriginReply {
  readonly status: number;
  /** HTTP/1 reason phrase; undefined over HTTP/2, which has none. */
  readonly statusMessage: string | undefined;
  readonly httpVersion: string;
  /** End-to-end and hop-by-hop fields as received, no pseudo-headers. */
  readonly rawHeaders: readonly string[];
  readonly body: Readable;
  /** True once the whole body arrived: not cut by an origin reset or close. */
  isComplete(): boolean;
  readonly tls: OriginTlsFacts | null;
}

/** A WebSocket handshake the origin accepted (101): from here the exchange is a byte relay. */
export interface UpgradedReply {
  readonly status: number;
  readonly statusMessage: string;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  /** The origin connection; bytes the origin sent after its 101 are still to be read from it. */
  readonly socket: Duplex;
  readonly tls: OriginTlsFacts | null;
}

export interface ExchangeHandlers {
  onResponse(reply: OriginReply): void;
  onUpgrade(reply: UpgradedReply): void;
  /**
   * The exchange failed, before the response head or while its body streamed; the error is from
   * the catalogue. Called at most once, and never after cancel().
   */
  onError(error: GatewayError): void;
}

export interface OriginExchange {
  /** The request body goes here and the forwarder ends it; null when the request has none. */
  readonly body: Writable | null;
  /** The gateway stops the exchange (a rule, DLP, a deadline, the client left): no more events. */
  cancel(): void;
  /**
   * The error for a response head that did not come within `ms`, naming whoever was silent:
   * the origin, or the parent proxy a plain HTTP request was sent to.
   */
  noResponse(ms: number): GatewayError;
}

/** The error for an origin that sent no response head within `ms` (upstream.response_timeout). */
export function originSilence(origin: string, ms: number): GatewayError {
  return new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'forward', `${origin} did not respond within ${ms} ms`);
}

export interface OriginLeg {
  start(request: OriginRequest, handlers: ExchangeHandlers): OriginExchange;
}
