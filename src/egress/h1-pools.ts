import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Target } from '../protocol/target';
import { hostAuthorityText } from '../protocol/host';
import type { Egress, OriginTlsOptions } from './egress';
import { parentAwareHandler } from './parent-http';
import type { GatewayError } from '../errors/gateway-error';
import { type ParentProxy, parentUnreachable } from './parents';

/**
 * undici's Client and Pool, loaded from their own modules: undici's index also loads fetch,
 * WebSocket, EventSource, caches and mocks, which this gateway never uses and which cost about
 * 18 MB of resident memory in every process (measured with one request made: 74.5 vs 56.5 MB).
 * The paths are undici's own; h1-pools.test.ts checks they are the classes its index exports.
 */
export const UNDICI_MODULES = { client: 'undici/lib/dispatcher/client.js', pool: 'undici/lib/dispatcher/pool.js' } as const;
const Client = require(UNDICI_MODULES.client) as typeof import('undici').Client;
const Pool = require(UNDICI_MODULES.pool) as typeof import('undici').Pool;
type Pool = import('undici').Pool;
type ClientOptions = import('undici').Client.Options;

export interface H1PoolOptions {
  readonly maxSocketsPerHost: number;
  /** How long an idle connection is kept (the origin's Keep-Alive hint may shorten it). */
  readonly idleTimeoutMs: number;
}

/** One HTTP/1.1 request to an origin, as the HTTP/1 origin leg asks for it. */
export interface H1Request {
  readonly target: Target;
  /** null: plain HTTP; else TLS with this server name (null for an address target). */
  readonly tls: { readonly servername: string | null; readonly verifyCertificate: boolean } | null;
  readonly method: string;
  readonly path: string;
  /**
   * The fields to send, Host first, without Transfer-Encoding or Connection. A Content-Length
   * given here is held to the body's real length; a body without one always goes out chunked.
   */
  readonly headers: readonly string[];
  /** The request body, or null for none. */
  readonly body: Readable | null;
  /** True when `headers` state the body's length (Content-Length). */
  readonly bodyLengthStated: boolean;
  /** 'websocket' to ask the origin for that upgrade (Connection/Upgrade are then sent). */
  readonly upgrade: string | null;
}

/**
 * Which connection carried a request, filled in when a pooled connection takes it: the origin
 * leg reads TLS facts (certificate, protocol) from `socket` once the response starts.
 */
export class H1Carrier {
  /** The carrying connection's socket holder, set by the pool. */
  link: { readonly socket: Socket | null } | null = null;
  /** Plain HTTP sent through a parent proxy: the parent asked last, and what it was asked. */
  viaParent: { readonly parent: ParentProxy; readonly what: string } | null = null;

  get socket(): Socket | null {
    return this.link?.socket ?? null;
  }

  /**
   * The error for no response head within `ms`: through a parent proxy, the parent is the hop
   * that stayed silent and the error names it (TG_ERR_PARENT_UNREACHABLE, a 502, as for a
   * parent that never answers a CONNECT); null when the request went to the origin itself.
   */
  parentSilence(ms: number): GatewayError | null {
    const via = this.viaParent;
    return via ? parentUnreachable(via.parent, `did not answer ${via.what} within ${ms} ms (upstream.response_timeout)`) : null;
  }
}

/** How the HTTP/1 leg hears one exchange: undici's dispatch handler, and the controller it gets. */
export type H1Handler = Dispatcher.DispatchHandler;
export type H1Controller = Dispatcher.DispatchController;

interface CarriedOptions extends Dispatcher.DispatchOptions {
  readonly carrier: H1Carrier;
}

/**
 * One keep-alive connection of a pool (undici's Client), opened through the egress door. It
 * remembers its current socket so that each request can be told which one carried it.
 */
class DoorClient extends Client {
  private readonly current: { socket: Socket | null };

  /** `parent`: plain HTTP sent to this parent proxy in absolute form instead of to the origin. */
  constructor(origin: URL, options: ClientOptions, egress: Egress, target: Target, tls: OriginTlsOptions | null, parent: string | null = null) {
    const current: { socket: Socket | null } = { socket: null };
    super(origin, {
      ...options,
      connect: (_ignored, callback) => {
        (parent !== null ? egress.connectParent(parent) : egress.connect(target, tls ? { tls } : {})).then(
          (connection) => {
            current.socket = connection.socket;
            callback(null, connection.socket);
          },
          (err: Error) => callback(err, null),
        );
      },
    });
    this.current = current;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // With one request at a time per connection, the socket at response time is this one's.
    (options as CarriedOptions).carrier.link = this.current;
    return super.dispatch(options, handler);
  }
}

/** undici accepts any async iterable as a body (documented; its DispatchOptions type lists only streams). */
function iterableOf(body: Readable): Readable {
  const iterable: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => body[Symbol.asyncIterator]() };
  return iterable as unknown as Readable;
}

/**
 * Keep-alive connection pools for the HTTP/1.1 origin leg, on undici: one Pool per origin and
 * way of reaching it (plain, verified TLS with a server name, or — for rules with
 * `upstream_insecure`, in pools of their own so their connections never serve another rule —
 * TLS whose certificate is NOT verified). Every connection is opened by the egress door
 * (resolve, destination guard, loop check, connect deadline, verified TLS); undici only
 * speaks HTTP/1.1 on it. Pools whose connections have all closed are dropped by a sweep.
 */
export class H1Pools {
  private readonly pools = new Map<string, Pool>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly egress: Egress,
    private readonly options: H1PoolOptions,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, options.idleTimeoutMs)).unref();
  }

  /**
   * Sends one request on a pooled connection; `handler` hears the response (undici's handler
   * interface) and errors, which for connection failures are GatewayErrors from the door.
   */
  dispatch(request: H1Request, handler: H1Handler): H1Carrier {
    // Plain HTTP through a parent goes to the parent itself; TLS through one is a CONNECT in the door.
    const route = request.tls === null ? this.egress.routeOf(request.target) : [];
    if (route.length > 0) return this.dispatchViaParent(request, handler, this.egress.parentOrder(route));
    const carrier = new H1Carrier();
    const options: CarriedOptions = {
      method: request.method as Dispatcher.HttpMethod,
      path: request.path,
      headers: request.headers as string[],
      // undici sends a stream that has already ended with the length it buffered; handed over as
      // an iterable, a body of unstated length is framed chunked however much of it has arrived,
      // so what the origin sees never depends on timing.
      body: request.body && !request.bodyLengthStated ? iterableOf(request.body) : request.body,
      upgrade: request.upgrade,
      carrier,
    };
    this.pool(request).dispatch(options, handler);
    return carrier;
  }

  /** True when the pool for this origin holds a connection that is open and not in use. */
  hasIdle(target: Target, tls: OriginTlsOptions | null): boolean {
    const pool = this.pools.get(this.key(target, tls));
    return pool !== undefined && pool.stats.free > 0;
  }

  destroy(): void {
    clearInterval(this.sweeper);
    for (const pool of this.pools.values()) pool.destroy().catch(() => undefined);
    this.pools.clear();
  }

  private key(target: Target, tls: { readonly servername: string | null; readonly verifyCertificate: boolean } | null): string {
    const way = tls === null ? 'http' : `${tls.verifyCertificate ? 'tls' : 'tls-unverified'}:${tls.servername ?? ''}`;
    // The way out is part of the key: a policy reload that changes a destination's `via` gets
    // new connections, never one opened the old way.
    return `${this.egress.routeOf(target).join(',') || 'direct'}|${way}|${hostAuthorityText(target.host)}:${target.port}`;
  }

  private pool(request: H1Request): Pool {
    const { target, tls } = request;
    const tlsOptions: OriginTlsOptions | null = tls ? { servername: tls.servername, verifyCertificate: tls.verifyCertificate, alpn: ['http/1.1'] } : null;
    return this.poolFor(this.key(target, tls), target, tlsOptions);
  }

  /** The keep-alive pool under `key`, opened on first use; its connections come from the egress door. */
  private poolFor(key: string, target: Target, tlsOptions: OriginTlsOptions | null, parent?: string): Pool {
    let pool = this.pools.get(key);
    if (pool) return pool;
    const egress = this.egress;
    const idle = this.options.idleTimeoutMs;
    pool = new Pool(`http://${hostAuthorityText(target.host)}:${target.port}`, {
      connections: this.options.maxSocketsPerHost,
      pipelining: 1,
      keepAliveTimeout: idle,
      keepAliveMaxTimeout: idle,
      // The forwarder owns every deadline (response, body stall); undici's own are off.
      headersTimeout: 0,
      bodyTimeout: 0,
      factory: (origin, options) => new DoorClient(origin, options as ClientOptions, egress, target, tlsOptions, parent),
    });
    this.pools.set(key, pool);
    return pool;
  }

  /**
   * Plain HTTP through a parent proxy: the request goes to the parent in absolute form
   * (`GET http://host:port/path`, RFC 9112 section 3.2.2) with the parent's credentials, on a
   * keep-alive pool per parent and origin (so max_sockets_per_host bounds each origin as it does
   * directly). The parent's own refusals (parentAwareHandler) fail the
   * request with a 502 naming it; a parent that cannot be reached passes a request without a
   * body to the next parent of the route (a body may already be partly consumed).
   */
  private dispatchViaParent(request: H1Request, handler: H1Handler, order: readonly string[], carrier = new H1Carrier()): H1Carrier {
    const [name, ...rest] = order;
    let parent: ParentProxy;
    try {
      this.egress.checkLiteral(request.target);
      parent = this.egress.parent(name ?? '');
    } catch (err) {
      queueMicrotask(() => handler.onResponseError?.(null as unknown as H1Controller, err as Error));
      return carrier;
    }
    const authority = `${hostAuthorityText(request.target.host)}:${request.target.port}`;
    const headers = parent.authorization ? [...request.headers, 'proxy-authorization', parent.authorization] : request.headers;
    const retry = rest.length > 0 && request.body === null ? (): void => void this.dispatchViaParent(request, handler, rest, carrier) : null;
    const options: CarriedOptions = {
      method: request.method as Dispatcher.HttpMethod,
      path: `http://${authority}${request.path}`,
      headers: headers as string[],
      body: request.body && !request.bodyLengthStated ? iterableOf(request.body) : request.body,
      upgrade: request.upgrade,
      carrier,
    };
    const what = `${request.method} http://${authority}${request.path.split('?')[0]}`;
    carrier.viaParent = { parent, what };
    this.parentPool(parent.name, request.target).dispatch(options, parentAwareHandler(handler, parent, what, retry));
    return carrier;
  }

  private parentPool(parent: string, target: Target): Pool {
    return this.poolFor(`parent:${parent}|http|${hostAuthorityText(target.host)}:${target.port}`, target, null, parent);
  }

  /** Drops pools with no connection, no request running and none waiting. */
  private sweep(): void {
    for (const [key, pool] of this.pools) {
      const { connected, pending, running } = pool.stats;
      if (connected === 0 && pending === 0 && running === 0) {
        this.pools.delete(key);
        pool.close().catch(() => undefined);
      }
    }
  }
}
