import type { TlsSummary } from '../audit/record-fields';
import type { Flow } from '../flow/flow';
import type { Principal } from '../identity/principal';
import type { Decision } from '../policy/types';
import type { Target } from '../protocol/target';
import { hostAuthorityText } from '../protocol/host';
import type { UpgradeSocket } from './upgrade';

/** One HTTP request on its way through the gateway, plain or decrypted. */
export interface RequestContext {
  readonly flow: Flow;
  readonly requestId: string;
  /**
   * Who this request authenticated as: its own, since requests on one connection may carry
   * different credentials (or none) while an earlier one is still in flight.
   */
  readonly principal: Principal | null;
  readonly scheme: 'http' | 'https';
  /** Where the request goes: the absolute-form authority, the Host header, or the tunnel. */
  readonly target: Target;
  /** SNI for the origin connection (https only); null for IP-literal targets. */
  readonly servername: string | null;
  readonly decision: Decision;
  /** The client side's TLS parameters when the request arrived inside an inspected tunnel. */
  readonly clientTls: TlsSummary | null;
  /** SNI the client sent, for the audit record. */
  readonly clientSni: string | null;
  /** Host header to send; null = derive it from `target`. Inside a tunnel, the client's own. */
  readonly hostHeader: string | null;
  /** Set for a WebSocket handshake: the client's raw socket, relayed once the origin agrees. */
  readonly upgrade?: UpgradeSocket;
  /** The client speaks HTTP/2 and so does the origin: forward over an HTTP/2 origin session. */
  readonly originH2?: boolean;
  /**
   * Reverse proxy: the application the client asked for (the route's host and the listener's
   * port, as `host:port`). Its backend may serve several applications, so the cache keys by it.
   */
  readonly publicAuthority?: string;
}

function defaultPort(scheme: 'http' | 'https'): number {
  return scheme === 'https' ? 443 : 80;
}

/** Host header value for the origin: the authority, with the port only when not the default. */
export function hostHeaderFor(scheme: 'http' | 'https', target: Target): string {
  const host = hostAuthorityText(target.host);
  return target.port === defaultPort(scheme) ? host : `${host}:${target.port}`;
}
