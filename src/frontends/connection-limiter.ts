import type { Server, Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { peerAddress } from '../flow/flow';
import type { Logger } from '../logging/logger';
import { noteLimitBreach } from '../observability/limit-breach';

export interface ConnectionLimits {
  /** `limits.max_connections`: open client connections over all listeners. */
  readonly maxConnections: number;
  /** `limits.max_connections_per_client`: open client connections from one address. */
  readonly maxConnectionsPerClient: number;
}

/** How a listener turns a refused connection away, in its own protocol. */
export type OverloadReply = (socket: Socket, error: GatewayError) => void;

/** Refuse without a word: for protocols that have no reply before their handshake. */
export const closeSilently: OverloadReply = (socket) => socket.destroy();

/**
 * Which limits an admission check applies. `all` for a listener whose socket address is the
 * client. Behind a load balancer (PROXY protocol) the check is split: `total` at accept, so
 * connections still waiting for their header count from the start, and `per-client` once the
 * header has named the real client (at accept every connection seems to come from the balancer).
 */
export type AdmissionScope = 'all' | 'total' | 'per-client';

/**
 * Counts open client connections over every listener and per client address. One limiter is
 * shared by all front-ends (the limit is the gateway's, not a listener's); each listener calls
 * `guard()` before `listen()`. A connection over a limit is answered by the listener's
 * `OverloadReply` (503 for HTTP front-ends, a close for the others) and never reaches the
 * listener's own handler, so it holds no parser, no flow and no upstream resources.
 */
export class ConnectionLimiter {
  private open = 0;
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly logger: Logger,
  ) {}

  get openConnections(): number {
    return this.open;
  }

  /**
   * Puts the admission check in front of the server's own 'connection' handlers. Node's
   * http.Server registers its parser on 'connection' in its constructor; moving the handlers
   * behind the check (rather than prepending one) is the only way to keep a refused socket
   * away from the parser — a prepended listener cannot stop the later ones from running.
   */
  guard(server: Server, frontend: string, reply: OverloadReply, scope: AdmissionScope = 'all'): void {
    const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!this.admit(socket, frontend, reply, scope)) return;
      for (const handler of handlers) handler.call(server, socket);
    });
  }

  /** Counts the socket in under `scope` (released on close) or refuses it; true when admitted. */
  admit(socket: Socket, frontend: string, reply: OverloadReply, scope: AdmissionScope = 'all'): boolean {
    const client = peerAddress(socket).address;
    const fromClient = this.perClient.get(client) ?? 0;
    const total = scope !== 'per-client' && this.open >= this.limits.maxConnections;
    const breached = total ? 'max_connections' : scope !== 'total' && fromClient >= this.limits.maxConnectionsPerClient ? 'max_connections_per_client' : null;
    if (breached) {
      // Errors after the refusal (the client resetting) are expected and not worth a line.
      socket.on('error', () => undefined);
      const limit = breached === 'max_connections' ? this.limits.maxConnections : this.limits.maxConnectionsPerClient;
      noteLimitBreach(this.logger, `limits.${breached}`, frontend, { value: limit, client, open: this.open, from_client: fromClient });
      const scopeText = breached === 'max_connections' ? 'in total' : `from ${client}`;
      reply(socket, new GatewayError('TG_ERR_OVERLOADED', 'accept', `the gateway already has ${limit} open connections ${scopeText} (limits.${breached})`));
      return false;
    }
    if (scope !== 'per-client') {
      this.open++;
      socket.once('close', () => this.open--);
    }
    if (scope !== 'total') {
      this.perClient.set(client, fromClient + 1);
      socket.once('close', () => {
        const left = (this.perClient.get(client) ?? 1) - 1;
        if (left <= 0) this.perClient.delete(client);
        else this.perClient.set(client, left);
      });
    }
    return true;
  }
}
