import { GatewayError } from './gateway-error';

/**
 * Proxy authentication refused: 407 with a challenge for the realm, or, once a client address
 * has failed too often, 429 with Retry-After (see identity/failure-throttle.ts).
 */
export class ProxyAuthError extends GatewayError {
  constructor(
    code: 'TG_ERR_AUTH_REQUIRED' | 'TG_ERR_AUTH_THROTTLED',
    message: string,
    /** Realm of the `Proxy-Authenticate: Basic` challenge. */
    readonly realm: string,
    /** Seconds until a throttled client may try again; null otherwise. */
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(code, 'auth', message);
  }
}
