import type { AddressInfo, Server, Socket } from 'node:net';
import { reachesListener } from '../egress/loop-check';
import { GatewayError } from '../errors/gateway-error';
import { writeRawHttpRefusal } from '../errors/refusal';
import type { Logger } from '../logging/logger';
import type { ListenAddress } from '../sources/fields';
import { ConnectionLimiter, type ConnectionLimits, type OverloadReply, closeSilently } from './connection-limiter';
import type { FlowServices } from '../flow/flow';
import type { FrontendKind } from '../policy/types';
import { OverloadRecords } from './overload-records';
import { requireProxyProtocol } from './proxy-protocol';

export type ListenerName = 'explicit' | 'socks' | 'transparentTls' | 'transparentHttp' | 'reverse' | 'reverseHttp' | 'admin';

/** Config keys of the listeners, as operators write them (logs and readiness reasons name these). */
export const LISTENER_CONFIG_KEYS: Readonly<Record<ListenerName, string>> = {
  explicit: 'explicit',
  socks: 'socks',
  transparentTls: 'transparent_tls',
  transparentHttp: 'transparent_http',
  reverse: 'reverse',
  reverseHttp: 'reverse_http',
  admin: 'admin',
};

export interface ListenersOptions extends ConnectionLimits {
  /** Listeners that take a PROXY protocol v2 header first (`listen.proxy_protocol`). */
  readonly proxyProtocol: readonly ListenerName[];
  readonly proxyHeaderTimeoutMs: number;
}

/** The `frontend` label of a listener in logs and events (the audit records' `frontend`). */
function frontendOf(name: ListenerName): string {
  switch (name) {
    case 'transparentTls':
      return 'transparent-tls';
    case 'transparentHttp':
      return 'transparent-http';
    case 'reverseHttp':
      return 'reverse';
    default:
      return name;
  }
}

/**
 * The audit `frontend` of a connection a listener refused before its front-end saw it (the
 * explicit listener's refusals come before any request: `explicit-http`).
 */
function recordedFrontendOf(name: Exclude<ListenerName, 'admin'>): FrontendKind {
  switch (name) {
    case 'explicit':
      return 'explicit-http';
    case 'transparentTls':
      return 'transparent-tls';
    case 'transparentHttp':
      return 'transparent-http';
    case 'reverse':
    case 'reverseHttp':
      return 'reverse';
    case 'socks':
      return 'socks';
  }
}

/** Over a connection limit, HTTP front-ends answer 503; the others can only close. */
function overloadReplyOf(name: ListenerName): OverloadReply {
  if (name !== 'explicit' && name !== 'transparentHttp' && name !== 'reverseHttp') return closeSilently;
  return (socket, error) => {
    // Read and drop what the client sends: closing with unread bytes would send a reset that
    // can destroy the 503 before the client reads it.
    socket.resume();
    writeRawHttpRefusal(socket, { kind: 'error', error }, 'none', 'gateway', { 'retry-after': '1' });
    setTimeout(() => socket.destroy(), 2_000).unref();
  };
}

/**
 * The gateway's listening sockets: binds each front-end's server behind connection admission
 * (and the PROXY header where configured), tracks the client connections for draining, and
 * knows the bound addresses, which is what the loop check compares a dialled address against.
 */
export class Listeners {
  private readonly servers = new Map<ListenerName, Server>();
  private readonly bound = new Map<ListenerName, AddressInfo>();
  private readonly sockets = new Set<Socket>();
  /** Admin connections are tracked apart: they are not client traffic, and close last. */
  private readonly adminSockets = new Set<Socket>();
  /** One count of open client connections shared by every listener except admin. */
  readonly connections: ConnectionLimiter;
  /** Audit records of connections refused at the connection limits; set once the audit exists. */
  private overloadRecords: OverloadRecords | null = null;

  constructor(
    private readonly options: ListenersOptions,
    private readonly logger: Logger,
  ) {
    this.connections = new ConnectionLimiter(options, logger);
  }

  /**
   * From now on, a connection refused at the connection limits gets a connection record
   * (bounded per second, overload-records.ts). Called before the listeners are bound.
   */
  recordOverloads(flows: FlowServices): void {
    this.overloadRecords = new OverloadRecords(flows, this.logger);
  }

  /** Bound address of a listener (port 0 in the configuration becomes the real port here). */
  address(name: ListenerName): AddressInfo | null {
    return this.bound.get(name) ?? null;
  }

  get boundNames(): ListenerName[] {
    return [...this.bound.keys()];
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Whether address:port reaches one of our own listeners (a proxy loop), as addresses. */
  isOwnListener(address: string, port: number): boolean {
    return reachesListener(address, port, this.bound.values());
  }

  bind(name: ListenerName, server: Server, at: ListenAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new GatewayError('TG_ERR_CONFIG', 'startup', `cannot listen on ${at.host}:${at.port} (listen.${LISTENER_CONFIG_KEYS[name]}): ${err.code ?? err.message}`, { cause: err }));
      };
      server.once('error', onError);
      const proxied = name !== 'admin' && this.options.proxyProtocol.includes(name);
      // Admission before the front-end sees the socket; the admin listener stays reachable when
      // the gateway is full, so operators can still look at it. Each call wraps the handlers
      // registered before it, so the last one runs first. Behind a load balancer: the global
      // limit at accept (a connection waiting for its PROXY header holds a descriptor like any
      // other), then the header, then the per-client limit with the client the header names.
      if (name !== 'admin') {
        const frontend = frontendOf(name);
        const answer = overloadReplyOf(name);
        const recordAs = recordedFrontendOf(name);
        const reply: OverloadReply = (socket, error) => {
          this.overloadRecords?.refused(socket, recordAs, error);
          answer(socket, error);
        };
        if (proxied) {
          this.connections.guard(server, frontend, reply, 'per-client');
          requireProxyProtocol(server, { timeoutMs: this.options.proxyHeaderTimeoutMs, listener: LISTENER_CONFIG_KEYS[name], frontend, logger: this.logger });
          this.connections.guard(server, frontend, reply, 'total');
        } else {
          this.connections.guard(server, frontend, reply);
        }
      }
      const tracked = name === 'admin' ? this.adminSockets : this.sockets;
      server.on('connection', (socket: Socket) => {
        tracked.add(socket);
        socket.once('close', () => tracked.delete(socket));
      });
      server.listen({ host: at.host, port: at.port }, () => {
        server.removeListener('error', onError);
        server.on('error', (err) => this.logger.error({ err, listener: LISTENER_CONFIG_KEYS[name] }, 'listener error'));
        const address = server.address() as AddressInfo;
        this.servers.set(name, server);
        this.bound.set(name, address);
        this.logger.info({ listener: LISTENER_CONFIG_KEYS[name], address: address.address, port: address.port, proxy_protocol: proxied }, 'listening');
        resolve();
      });
    });
  }

  /**
   * Stops accepting on the client listeners, lets open connections finish for up to `graceMs`
   * (idle keep-alive connections are closed at once), then cuts what is left: `atGraceEnd` runs
   * first (the gateway marks the flows still open as cut by the shutdown), then every client
   * socket is destroyed. The admin listener stays up meanwhile, so /readyz can tell balancers
   * to stop sending.
   */
  async drain(graceMs: number, atGraceEnd: () => void = () => undefined): Promise<void> {
    const servers = [...this.servers.entries()].filter(([name]) => name !== 'admin').map(([, server]) => server);
    const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    const closeIdle = (): void => {
      for (const server of servers) (server as Partial<{ closeIdleConnections: () => void }>).closeIdleConnections?.();
    };
    closeIdle();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
      closeIdle();
    }
    atGraceEnd();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closed);
    this.overloadRecords?.close();
  }

  /** Closes the admin listener and its connections (after drain). */
  async closeAdmin(): Promise<void> {
    const admin = this.servers.get('admin');
    if (!admin) return;
    const closed = new Promise<void>((resolve) => admin.close(() => resolve()));
    for (const socket of this.adminSockets) socket.destroy();
    await closed;
  }
}
