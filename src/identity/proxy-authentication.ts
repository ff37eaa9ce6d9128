import { ProxyAuthError } from '../errors/auth-error';
import { GatewayError } from '../errors/gateway-error';
import { publish } from '../observability/events';
import { parseProxyAuthorization } from './basic-credentials';
import type { Principal } from './principal';
import type { AuthFailure, UserStore } from './user-store';

export interface ProxyAuthSettings {
  readonly store: UserStore;
  readonly realm: string;
}

export type ProxyAuthResult =
  | { readonly ok: true; readonly principal: Principal }
  /** `missing`: no credentials, the normal first step of the challenge; not a failure. */
  | { readonly ok: false; readonly error: GatewayError; readonly missing: boolean };

function throttled(realm: string, retryAfterMs: number): Checked {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return {
    ok: false,
    missing: false,
    reason: 'throttled',
    error: new ProxyAuthError('TG_ERR_AUTH_THROTTLED', `too many failed proxy authentications from this address; try again in ${seconds} s`, realm, seconds),
  };
}

/**
 * Checks the `Proxy-Authorization` of one explicit-proxy request or CONNECT. A request without
 * credentials is the first step of the challenge, not a failure; a malformed header, an unknown
 * user or a wrong password is, counts toward the client address's throttle, and is published
 * as `tollgate:auth:failed` (front-ends publish their own authentication failures).
 */
export async function authenticateProxyRequest(auth: ProxyAuthSettings, rawHeaders: readonly string[], clientAddress: string, frontend: string): Promise<ProxyAuthResult> {
  const result = await check(auth, rawHeaders, clientAddress, frontend);
  if (!result.ok && !result.missing) publish('tollgate:auth:failed', { frontend, reason: result.reason });
  return result.ok ? result : { ok: false, error: result.error, missing: result.missing };
}

type Checked = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly error: GatewayError; readonly missing: boolean; readonly reason: AuthFailure };

/** The shared failure count (state.redis) cannot be reached: credentials are not checked at all. */
function unavailable(): Checked {
  return {
    ok: false,
    missing: false,
    reason: 'unavailable',
    error: new GatewayError('TG_ERR_OVERLOADED', 'auth', 'proxy authentication is unavailable: the shared failure count cannot be reached; try again shortly'),
  };
}

async function check(auth: ProxyAuthSettings, rawHeaders: readonly string[], clientAddress: string, frontend: string): Promise<Checked> {
  const wait = await auth.store.throttledFor(clientAddress);
  if (wait === null) return unavailable();
  if (wait > 0) return throttled(auth.realm, wait);
  const parsed = parseProxyAuthorization(rawHeaders);
  const required = (message: string, reason: AuthFailure, missing = false): Checked => ({ ok: false, missing, reason, error: new ProxyAuthError('TG_ERR_AUTH_REQUIRED', message, auth.realm) });
  switch (parsed.kind) {
    case 'none':
      return required('proxy authentication required: send Proxy-Authorization: Basic', 'malformed', true);
    case 'invalid':
      await auth.store.fail(clientAddress, frontend, 'malformed');
      return required(`invalid proxy credentials: ${parsed.reason}`, 'malformed');
    case 'ok': {
      const outcome = await auth.store.authenticate(parsed.credentials.username, parsed.credentials.password, clientAddress, frontend);
      if (outcome.ok) return outcome;
      if (outcome.reason === 'throttled') return throttled(auth.realm, outcome.retryAfterMs);
      if (outcome.reason === 'unavailable') return unavailable();
      if (outcome.reason === 'busy') {
        return { ok: false, missing: false, reason: 'busy', error: new GatewayError('TG_ERR_OVERLOADED', 'auth', 'too many authentications in progress; try again shortly') };
      }
      // Unknown user and wrong password read the same to the client: names are not confirmed.
      return required('proxy authentication failed: unknown user or wrong password', outcome.reason);
    }
  }
}
