import http, { type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Target } from '../protocol/target';
import { hostText } from '../protocol/host';
import type { Egress, OriginTlsOptions } from './egress';

export interface H1PoolOptions {
  readonly maxSocketsPerHost: number;
  readonly idleTimeoutMs: number;
}

/** One HTTP/1.1 request to an origin, as the HTTP/1 origin leg asks for it. */
export interface H1RequestOptions {
  readonly target: Target;
  /** null: plain HTTP; else TLS with this server name (null for an address target). */
  readonly tls: { readonly servername: string | null; readonly verifyCertificate: boolean } | null;
  readonly method: string;
  readonly path: string;
  /** The complete header list as sent, Host first (framing stated: see http/framing.ts). */
  readonly headers: readonly string[];
}

/** Options Node hands back to createConnection: ours ride along with its own. */
interface ConnectionOptions {
  readonly tollgateTarget: Target;
  readonly tollgateTls: OriginTlsOptions | null;
}

type ConnectCallback = (err: Error | null, socket?: Duplex) => void;

/**
 * An agent whose connections come from the egress door (resolve, destination guard, loop
 * check, connect deadline, verified TLS) instead of Node's own net/tls connect. Node calls
 * createConnection for each new pooled socket and accepts an answer through the callback.
 */
function doorAgent<T extends typeof http.Agent>(Base: T, egress: Egress, options: http.AgentOptions): InstanceType<T> {
  class DoorAgent extends (Base as typeof http.Agent) {
    override createConnection(connectOptions: unknown, callback: ConnectCallback): undefined {
      const { tollgateTarget, tollgateTls } = connectOptions as ConnectionOptions;
      egress.connect(tollgateTarget, tollgateTls ? { tls: tollgateTls } : {}).then(
        (connection) => callback(null, connection.socket),
        (err: Error) => callback(err),
      );
      return undefined;
    }
  }
  return new DoorAgent(options) as InstanceType<T>;
}

/**
 * Keep-alive connection pools for the HTTP/1.1 origin leg: plain HTTP, verified TLS, and — in
 * a pool of its own so its connections never serve another rule — TLS whose certificate is
 * NOT verified, for rules with `upstream_insecure`. Pools are keyed by host, port and server
 * name (Node's agent key); every connection is opened by the egress door.
 */
export class H1Pools {
  private readonly plain: http.Agent;
  private readonly verifying: https.Agent;
  private readonly unverified: https.Agent;

  constructor(egress: Egress, options: H1PoolOptions) {
    const common: http.AgentOptions = {
      keepAlive: true,
      maxSockets: options.maxSocketsPerHost,
      maxFreeSockets: 64,
      timeout: options.idleTimeoutMs,
      scheduling: 'lifo',
    };
    this.plain = doorAgent(http.Agent, egress, common);
    this.verifying = doorAgent(https.Agent, egress, common);
    this.unverified = doorAgent(https.Agent, egress, common);
  }

  /** A request on a pooled connection; its socket errors carry GatewayErrors from the door. */
  request(options: H1RequestOptions): ClientRequest {
    const { target, tls } = options;
    const base = {
      host: hostText(target.host),
      port: target.port,
      method: options.method,
      path: options.path,
      headers: options.headers as unknown as OutgoingHttpHeaders,
      setHost: false,
      tollgateTarget: target,
    };
    if (!tls) return http.request({ ...base, agent: this.plain, tollgateTls: null } as http.RequestOptions);
    const tlsOptions: OriginTlsOptions = { servername: tls.servername, verifyCertificate: tls.verifyCertificate, alpn: ['http/1.1'] };
    return https.request({
      ...base,
      // Part of Node's pool key: a connection for one server name never serves another.
      servername: tls.servername ?? '',
      agent: tls.verifyCertificate ? this.verifying : this.unverified,
      tollgateTls: tlsOptions,
    } as https.RequestOptions);
  }

  destroy(): void {
    this.plain.destroy();
    this.verifying.destroy();
    this.unverified.destroy();
  }
}
