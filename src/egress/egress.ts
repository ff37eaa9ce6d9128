import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { asGatewayError, GatewayError } from '../errors/gateway-error';
import type { Target } from '../protocol/target';
import { hostAuthorityText, hostText, normaliseHost } from '../protocol/host';
import type { AddressGuard } from './address-guard';
import { AheadConnections } from './ahead';
import { classifyOriginError, connectTimeout } from './errors';
import { TlsSessionCache } from './origin-tls';
import type { ResolvedAddress, Resolver } from './resolve';
import { bracketedAddress } from '../protocol/address-text';
import { connectThrough, feedOnread, ParentHealth, type ParentProxy, parentText, parentUnreachable, reportParent } from './parents';

export interface EgressOptions {
  readonly resolver: Resolver;
  readonly guard: AddressGuard;
  /**
   * True when address:port is one of the gateway's own listeners (a proxy loop). Takes the
   * address exactly as it will be dialled and compares it as an address (loop-check.ts).
   */
  readonly isOwnListener: (address: string, port: number) => boolean;
  /** One deadline for resolving, connecting and the TLS handshake together. */
  readonly connectTimeoutMs: number;
  /** The verifying TLS context of origin connections (origin-tls.ts). */
  readonly originContext: tls.SecureContext;
  readonly tlsSessionCacheSize?: number;
  /** How long a connection opened ahead waits to be taken (default 10 s). */
  readonly aheadMs?: number;
  /** Parent proxies by name (`upstream.parents`, parents.ts); none: every route is direct. */
  readonly parents?: ReadonlyMap<string, ParentProxy>;
  /** The way out to a destination: [] direct, else parent names in failover order (policy's routeFor). */
  readonly route?: (target: Target) => readonly string[];
}

/** TLS to the origin on top of the TCP connection. */
export interface OriginTlsOptions {
  /** SNI, and the name the certificate is verified for; null for an address target. */
  readonly servername: string | null;
  /** False only for a rule with `upstream_insecure`: the certificate is then NOT verified. */
  readonly verifyCertificate: boolean;
  readonly alpn?: readonly string[];
}

export interface ConnectOptions {
  readonly tls?: OriginTlsOptions;
  /**
   * Keep the socket open for writing after the origin's FIN (a spliced tunnel passes each side's
   * half-close on). Pooled HTTP connections must not: a pooled socket the origin closed has to
   * leave the pool, not be reused for the next request.
   */
  readonly halfOpen?: boolean;
  /** Reads into caller-supplied buffers (net's `onread`; a splice, relay/origin-reads.ts). */
  readonly onread?: net.OnReadOpts;
}

/** How long a connection opened ahead waits to be taken before it is closed. */
const DEFAULT_AHEAD_MS = 10_000;

/** One connect() in progress: what its deadline must tear down. */
interface Attempt {
  expired: boolean;
  socket: net.Socket | null;
}

export interface OriginConnection {
  /** A TLSSocket when `tls` was asked for, after a completed (and verified) handshake. */
  readonly socket: net.Socket;
  /** The address dialled: checked by the destination guard and the loop check first (a parent's, through one). */
  readonly remote: ResolvedAddress;
  /** `direct`, or the name of the parent proxy that carries the connection. */
  readonly via: string;
}

/**
 * The only door out. Every outbound connection — a spliced tunnel, the HTTP/1 pools, HTTP/2
 * sessions, the ALPN probe — is opened by `connect()`: it resolves (or takes the literal),
 * refuses addresses the destination guard forbids and the gateway's own listeners (a loop),
 * dials the allowed addresses in order, and does the TLS handshake with the origin's
 * verification, all within one connect deadline. No caller can reach an origin without
 * passing the guard, because no other module opens connections (a test in npm test checks).
 */
export class Egress {
  readonly connectTimeoutMs: number;
  private readonly sessions: TlsSessionCache;
  private readonly ahead: AheadConnections<OriginConnection>;
  private readonly parentHealth = new ParentHealth();

  constructor(private readonly options: EgressOptions) {
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.sessions = new TlsSessionCache(options.tlsSessionCacheSize ?? 1000);
    this.ahead = new AheadConnections(options.aheadMs ?? DEFAULT_AHEAD_MS);
  }

  /** Why one address may not be dialled on `port` (a loop, or the destination guard), or null. */
  refusalFor(address: string, port: number): GatewayError | null {
    if (this.options.isOwnListener(address, port)) return new GatewayError('TG_ERR_LOOP', 'resolve', `${address}:${port} is one of this gateway's listeners`);
    const verdict = this.options.guard.check(address);
    return verdict.allowed ? null : new GatewayError('TG_ERR_DESTINATION_FORBIDDEN', 'resolve', verdict.reason);
  }

  /** Resolves a target and keeps only the addresses that may be dialled; throws when none. */
  async resolveAllowed(target: Target): Promise<readonly ResolvedAddress[]> {
    const addresses = await this.options.resolver.resolve(target.host);
    const allowed: ResolvedAddress[] = [];
    let refusal: GatewayError | null = null;
    for (const candidate of addresses) {
      const problem = this.refusalFor(candidate.address, target.port);
      if (problem === null) allowed.push(candidate);
      else if (refusal === null || problem.code === 'TG_ERR_LOOP') refusal = problem;
    }
    if (allowed.length === 0) throw refusal ?? new GatewayError('TG_ERR_DNS', 'resolve', 'no addresses');
    return allowed;
  }

  /** The way out to `target` under the policy in force: [] direct, else parent names in failover order. */
  routeOf(target: Target): readonly string[] {
    return this.options.route?.(target) ?? [];
  }

  /**
   * Whether a destination may be reached, checked before a tunnel is accepted (inspect). Direct:
   * its addresses are resolved and guarded. Through a parent, which resolves names itself, only
   * a literal address is guarded here; the parent's own address is guarded when it is dialled.
   */
  async checkReachable(target: Target): Promise<void> {
    if (this.routeOf(target).length === 0) await this.resolveAllowed(target);
    else this.checkLiteral(target);
  }

  /** Through a parent: a literal destination address still passes the guard and loop check. */
  checkLiteral(target: Target): void {
    if (target.host.kind === 'name') return;
    const problem = this.refusalFor(target.host.address, target.port);
    if (problem) throw problem;
  }

  /**
   * A connection to a parent proxy itself (no CONNECT), for plain HTTP requests sent to it in
   * absolute form (h1-pools.ts), within the connect deadline.
   */
  connectParent(name: string): Promise<OriginConnection> {
    const parent = this.parent(name);
    return this.attemptParent(parent, (attempt) => this.openParent(parent, {}, attempt));
  }

  /** The parents of a route in the order to try them: those seen unreachable lately go last. */
  parentOrder(route: readonly string[]): string[] {
    return this.parentHealth.order(route);
  }

  /** A configured parent by name; its Proxy-Authorization value is a secret (never logged). */
  parent(name: string): ParentProxy {
    const parent = this.options.parents?.get(name);
    if (parent) return parent;
    throw new GatewayError('TG_ERR_PARENT_UNREACHABLE', 'connect', `parent proxy ${name} is not in the running configuration (upstream.parents); restart the gateway after adding it`);
  }

  /**
   * Through parents: each in turn (parentOrder) until one answers; a parent that cannot be
   * reached or does not answer in time passes to the next, a parent's refusal (403, 407, ...)
   * and an origin's certificate failure are final. Name resolution is the parent's.
   */
  private async viaParents(route: readonly string[], target: Target, options: ConnectOptions): Promise<OriginConnection> {
    this.checkLiteral(target);
    let last: GatewayError | null = null;
    for (const name of this.parentOrder(route)) {
      const parent = this.parent(name);
      try {
        return await this.attemptParent(parent, (attempt) => this.throughParent(parent, target, options, attempt));
      } catch (err) {
        last = asGatewayError(err, 'connect');
        if (last.code !== 'TG_ERR_PARENT_UNREACHABLE') throw last;
      }
    }
    throw last ?? new GatewayError('TG_ERR_PARENT_UNREACHABLE', 'connect', 'no parent proxy in the route');
  }

  /** One attempt with one parent, under its own connect deadline; notes the outcome (health, metrics). */
  private async attemptParent(parent: ParentProxy, run: (attempt: Attempt) => Promise<OriginConnection>): Promise<OriginConnection> {
    const ms = this.connectTimeoutMs;
    const attempt: Attempt = { expired: false, socket: null };
    let timer: NodeJS.Timeout | null = null;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        attempt.expired = true;
        attempt.socket?.destroy();
        reject(parentUnreachable(parent, `did not answer within ${ms} ms (upstream.connect_timeout)`));
      }, ms);
    });
    const opened = run(attempt);
    opened.then(
      (connection) => attempt.expired && connection.socket.destroy(),
      () => undefined,
    );
    try {
      const connection = await Promise.race([opened, deadline]);
      this.parentHealth.markUp(parent.name);
      reportParent(parent.name, 'connected');
      return connection;
    } catch (err) {
      const error = asGatewayError(err, 'connect');
      if (error.code === 'TG_ERR_PARENT_UNREACHABLE') {
        this.parentHealth.markDown(parent.name);
        reportParent(parent.name, 'unreachable');
      } else reportParent(parent.name, error.code === 'TG_ERR_PARENT_REFUSED' ? 'refused' : 'connected');
      throw error;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** TCP (and TLS for an https:// parent) to the parent; its address passes the guard and loop check. */
  private async openParent(parent: ParentProxy, options: ConnectOptions, attempt: Attempt): Promise<OriginConnection> {
    const host = normaliseHost(parent.host);
    if (!host.ok) throw parentUnreachable(parent, `has an invalid host: ${host.reason}`);
    const target: Target = { host: host.host, port: parent.port };
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await this.options.resolver.resolve(host.host);
    } catch (err) {
      throw parentUnreachable(parent, `cannot be resolved: ${asGatewayError(err, 'resolve').message}`);
    }
    let last: GatewayError | null = null;
    for (const remote of addresses) {
      if (attempt.expired) break;
      const problem = this.refusalFor(remote.address, parent.port);
      if (problem) {
        const hint = problem.code === 'TG_ERR_DESTINATION_FORBIDDEN' ? ' (list its address in upstream.allow_addresses)' : '';
        throw new GatewayError(problem.code, 'resolve', `${parentText(parent)}: ${problem.message}${hint}`);
      }
      try {
        const socket = await this.tcp(remote, parent.port, { halfOpen: options.halfOpen === true }, attempt);
        if (!parent.tls) return { socket, remote, via: parent.name };
        const servername = host.host.kind === 'name' ? host.host.name : null;
        const secure = await this.handshake(socket, target, `parent:${remote.address}`, { servername, verifyCertificate: true, alpn: ['http/1.1'] }, attempt);
        return { socket: secure, remote, via: parent.name };
      } catch (err) {
        last = parentUnreachable(parent, `at ${bracketedAddress(remote.address)}:${parent.port}: ${asGatewayError(err, 'connect').message}`);
      }
    }
    throw last ?? parentUnreachable(parent, 'has no address');
  }

  /** CONNECT through a parent, then TLS with the origin inside the tunnel when asked (still verified here). */
  private async throughParent(parent: ParentProxy, target: Target, options: ConnectOptions, attempt: Attempt): Promise<OriginConnection> {
    const connection = await this.openParent(parent, options, attempt);
    attempt.socket = connection.socket;
    await connectThrough(connection.socket, parent, target);
    let socket = connection.socket;
    if (options.tls) socket = await this.handshake(socket, target, `${parent.name}>${hostText(target.host)}`, options.tls, attempt);
    else if (options.onread) feedOnread(socket, options.onread);
    return { socket, remote: connection.remote, via: parent.name };
  }

  /**
   * Opens a connection to `target`: TCP to the first allowed address that answers, then TLS when
   * asked. Rejects with a GatewayError from the catalogue (refusal, DNS, refused, unreachable,
   * certificate, TLS, or the connect deadline).
   */
  connect(target: Target, options: ConnectOptions = {}): Promise<OriginConnection> {
    const early = options.tls && !options.halfOpen ? this.ahead.take(this.aheadKey(target, options.tls), options.tls.alpn ?? []) : null;
    return early ?? this.dial(target, options);
  }

  /** connect() without looking at connections opened ahead: always a new connection. */
  private dial(target: Target, options: ConnectOptions): Promise<OriginConnection> {
    const route = this.routeOf(target);
    if (route.length > 0) return this.viaParents(route, target, options);
    const ms = this.connectTimeoutMs;
    const attempt: Attempt = { expired: false, socket: null };
    let timer: NodeJS.Timeout | null = null;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        attempt.expired = true;
        attempt.socket?.destroy();
        reject(connectTimeout(`${hostAuthorityText(target.host)}:${target.port}`, ms));
      }, ms);
    });
    const opened = this.open(target, options, attempt);
    // A connection that completes after the deadline has no one waiting for it.
    opened.then(
      (connection) => attempt.expired && connection.socket.destroy(),
      () => undefined,
    );
    return Promise.race([opened, deadline]).finally(() => {
      if (timer) clearTimeout(timer);
    });
  }

  /**
   * Starts a verified TLS connection now, for a request expected shortly (the first request of a
   * newly inspected name, while its certificate is minted and the client's handshake runs), and
   * holds it for the next connect() to the same origin, server name and verification whose ALPN
   * list accepts what it negotiates (ahead.ts); one per origin and offer at a time, closed
   * after 10 s unclaimed. Resolves to the negotiated protocol ('h2', 'http/1.1', false without
   * ALPN), or null when it failed (a connect() that took it meanwhile gets the failure itself).
   */
  openAhead(target: Target, tls: OriginTlsOptions): Promise<string | false | null> {
    return this.ahead.open(this.aheadKey(target, tls), tls.alpn ?? [], () => this.dial(target, { tls }));
  }

  /** True when a connection opened ahead with this offer is on its way or waiting. */
  hasAhead(target: Target, tls: OriginTlsOptions): boolean {
    return this.ahead.has(this.aheadKey(target, tls), tls.alpn ?? []);
  }

  private aheadKey(target: Target, tls: OriginTlsOptions): string {
    return `${this.routeOf(target).join(',')}|${hostAuthorityText(target.host)}:${target.port}|${tls.servername ?? ''}|${tls.verifyCertificate ? 'verified' : 'unverified'}`;
  }

  private async open(target: Target, options: ConnectOptions, attempt: Attempt): Promise<OriginConnection> {
    const tlsOptions = options.tls ?? null;
    const addresses = await this.resolveAllowed(target);
    let lastError: GatewayError | null = null;
    for (const remote of addresses) {
      if (attempt.expired) break;
      try {
        const socket = await this.tcp(remote, target.port, options, attempt);
        if (!tlsOptions) return { socket, remote, via: 'direct' };
        return { socket: await this.handshake(socket, target, remote.address, tlsOptions, attempt), remote, via: 'direct' };
      } catch (err) {
        lastError = err as GatewayError;
        // A certificate or TLS failure is the origin's answer, not an unreachable address.
        if (lastError.phase === 'tls-origin') throw lastError;
      }
    }
    throw lastError ?? connectTimeout(hostText(target.host), this.connectTimeoutMs);
  }

  private tcp(remote: ResolvedAddress, port: number, options: ConnectOptions, attempt: Attempt): Promise<net.Socket> {
    const allowHalfOpen = options.halfOpen === true;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: remote.address, port, family: remote.family, noDelay: true, allowHalfOpen, ...(options.onread ? { onread: options.onread } : {}) });
      attempt.socket = socket;
      const where = `${bracketedAddress(remote.address)}:${port}`;
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => reject(classifyOriginError(err, where)));
    });
  }

  /** `sessionAddress`: the address dialled, keying TLS session reuse (through a parent: parent and origin). */
  private handshake(socket: net.Socket, target: Target, sessionAddress: string, options: OriginTlsOptions, attempt: Attempt): Promise<TLSSocket> {
    const key = TlsSessionCache.key(sessionAddress, target.port, options.servername, options.verifyCertificate);
    return new Promise((resolve, reject) => {
      const secure = tls.connect({
        socket,
        // The name the certificate must carry: the server name, else the address itself.
        host: options.servername ?? hostText(target.host),
        ...(options.servername ? { servername: options.servername } : {}),
        secureContext: this.options.originContext,
        minVersion: 'TLSv1.2',
        rejectUnauthorized: options.verifyCertificate,
        ...(options.alpn ? { ALPNProtocols: [...options.alpn] } : {}),
        session: this.sessions.get(key),
      });
      attempt.socket = secure;
      this.sessions.remember(key, secure);
      const where = `https://${hostAuthorityText(target.host)}:${target.port}`;
      secure.once('secureConnect', () => {
        secure.removeAllListeners('error');
        resolve(secure);
      });
      secure.once('error', (err: NodeJS.ErrnoException) => {
        socket.destroy();
        reject(classifyOriginError(err, where));
      });
    });
  }
}
