import type { TlsSummary } from '../audit/record-fields';
import type { Flow } from '../flow/flow';
import type { FrontendKind } from '../policy/types';
import type { Host } from '../protocol/host';
import type { Target } from '../protocol/target';

/** Where a reverse-proxy route sends its requests (frontends/reverse-routes.ts builds them). */
export interface ReverseBackend {
  /** The route as the audit record names it: `host` + `path_prefix`, or `default_route`. */
  readonly route: string;
  /** The backend URL's scheme and authority, `https://app.internal:8443`. */
  readonly backend: string;
  readonly scheme: 'http' | 'https';
  readonly target: Target;
  /** SNI and verified name of an https backend; null for an address. */
  readonly servername: string | null;
}

/** A reverse-proxy listener as the entry sees it. */
export interface ReverseSource {
  /** The flow of a TLS connection; absent for cleartext, whose flow is the connection's own. */
  readonly flow?: Flow;
  readonly frontend: FrontendKind;
  /** The front-end kind policy treats requests as (its allowed ports: http for cleartext, tunnel for TLS). */
  readonly policyFrontend: FrontendKind;
  /**
   * The scheme the client used, and the port policy decides with: the application's public port
   * (443 or 80), whatever port the listener is bound to or Host names.
   */
  readonly scheme: 'http' | 'https';
  readonly port: number;
  readonly clientTls: TlsSummary | null;
  readonly clientSni: string | null;
  readonly route: (host: Host, path: string) => ReverseBackend | null;
  /** Why this connection may not carry a request for `host` (421), or null (RFC 9110 7.4). */
  readonly misdirected?: (host: Host) => string | null;
  /** Set: refuse the request with 400 for this reason before routing it. */
  readonly refusal?: string;
  /** Told the route of each request before its record is written (null: refused before routing). */
  readonly routed: (requestId: string, backend: ReverseBackend | null) => void;
}
