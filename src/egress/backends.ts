import { GatewayError } from '../errors/gateway-error';
import { ConfigError } from '../sources/config-error';
import { hostAuthorityText } from '../protocol/host';
import type { Target } from '../protocol/target';
import { AddressGuard } from './address-guard';
import { type ConnectOptions, Egress, type EgressOptions, type OriginConnection, type OriginTlsOptions } from './egress';
import { createOriginContext } from './origin-tls';
import type { ResolvedAddress } from './resolve';

/** A backend the reverse-proxy routes name, and the trust anchors its certificate is verified with. */
export interface BackendEndpoint {
  readonly target: Target;
  /** A route's `ca_file`; null = `upstream.ca_file` (always added to the system's roots). */
  readonly caFile: string | null;
  /** The config key of the route (`reverse.routes[2]`), for errors. */
  readonly key: string;
}

export type BackendEgressOptions = Omit<EgressOptions, 'guard' | 'originContext'> & {
  /** `upstream.ca_file`. */
  readonly upstreamCaFile: string | null;
};

/**
 * Backends are internal by nature (an application server on a private address), and the
 * operator named each one in `reverse.routes`: the destination guard does not apply to them.
 * The loop check still does.
 */
const BACKENDS_ARE_INTERNAL = new AddressGuard(['0.0.0.0/0', '::/0']);

function endpointKey(target: Target): string {
  return `${hostAuthorityText(target.host)}:${target.port}`;
}

/**
 * The reverse-proxy listener's way out: dials the configured backends and nothing else. Every
 * other target is refused before any name is resolved, so a request whose Host matches no route
 * (or a bug that builds some other target) can never reach an upstream through it. Each backend
 * is verified with its route's `ca_file`, else `upstream.ca_file`, with its own name as SNI.
 * It is an Egress (the origin legs and pools take one); the dialling itself is Egress's own.
 */
export class BackendEgress extends Egress {
  private byEndpoint = new Map<string, Egress>();

  constructor(private readonly backendOptions: BackendEgressOptions) {
    super({ ...backendOptions, guard: BACKENDS_ARE_INTERNAL, originContext: createOriginContext(backendOptions.upstreamCaFile) });
  }

  /**
   * Replaces the set of backends (start, and each reload of the routes). Trust stores are built
   * first; a CA file that cannot be read throws ConfigError and leaves the current set in force.
   */
  update(endpoints: readonly BackendEndpoint[]): void {
    const perCa = new Map<string, Egress>();
    const next = new Map<string, Egress>();
    for (const endpoint of endpoints) {
      const caKey = endpoint.caFile ?? '';
      let egress = perCa.get(caKey);
      if (!egress) {
        let originContext: ReturnType<typeof createOriginContext>;
        try {
          originContext = createOriginContext(endpoint.caFile ?? this.backendOptions.upstreamCaFile);
        } catch (err) {
          if (!(err instanceof ConfigError) || endpoint.caFile === null) throw err;
          throw new ConfigError(err.problems.map((p) => ({ ...p, path: `${endpoint.key}.ca_file` })));
        }
        egress = new Egress({ ...this.backendOptions, guard: BACKENDS_ARE_INTERNAL, originContext });
        perCa.set(caKey, egress);
      }
      next.set(endpointKey(endpoint.target), egress);
    }
    this.byEndpoint = next;
  }

  /** Whether `target` is a configured backend. */
  isBackend(target: Target): boolean {
    return this.byEndpoint.has(endpointKey(target));
  }

  private egressFor(target: Target): Egress {
    const egress = this.byEndpoint.get(endpointKey(target));
    if (!egress) throw new GatewayError('TG_ERR_DESTINATION_FORBIDDEN', 'resolve', `${endpointKey(target)} is not a backend of reverse.routes; the reverse-proxy listener reaches nothing else`);
    return egress;
  }

  override connect(target: Target, options: ConnectOptions = {}): Promise<OriginConnection> {
    try {
      return this.egressFor(target).connect(target, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  override resolveAllowed(target: Target): Promise<readonly ResolvedAddress[]> {
    try {
      return this.egressFor(target).resolveAllowed(target);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Backends are dialled on demand only. */
  override openAhead(_target: Target, _tls: OriginTlsOptions): Promise<string | false | null> {
    return Promise.resolve(null);
  }

  override hasAhead(): boolean {
    return false;
  }
}
