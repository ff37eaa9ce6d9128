import type { Logger } from '../logging/logger';
import { publish } from './events';

/** The configuration keys of the limits a client or origin can run into. */
export type LimitKey =
  | 'limits.max_connections'
  | 'limits.max_connections_per_client'
  | 'limits.header_timeout'
  | 'limits.proxy_header_timeout'
  | 'limits.peek_timeout'
  | 'limits.socks_handshake_timeout'
  | 'limits.tls_handshake_timeout'
  | 'limits.client_idle_timeout'
  | 'http.max_header_size'
  | 'http.max_headers'
  | 'upstream.connect_timeout'
  | 'upstream.response_timeout'
  | 'upstream.idle_timeout';

/**
 * Every limit breach leaves one log line naming the configuration key to raise, and one
 * `tollgate:limit:breached` event (its `limit` is the key's last part, e.g. `header_timeout`).
 */
export function noteLimitBreach(log: Logger, key: LimitKey, frontend: string, fields: Record<string, unknown> = {}): void {
  log.info({ limit: key, frontend, ...fields }, `limit reached: ${key}`);
  publish('tollgate:limit:breached', { limit: key.slice(key.indexOf('.') + 1), frontend });
}
