import http2 from 'node:http2';
import tls from 'node:tls';
import { type Egress, guardedLookup } from '../egress/dial';
import type { Target } from '../protocol/authority';
import { hostAuthorityText, hostText } from '../protocol/host';

export interface H2OriginPoolOptions {
  readonly egress: Egress;
  /** The verifying TLS context of the origin pools. */
  readonly secureContext: tls.SecureContext;
  readonly idleTimeoutMs: number;
}

/**
 * One multiplexed HTTP/2 session per origin (host, port, SNI), used for requests that arrive
 * over HTTP/2 from clients when the origin speaks h2. Sessions are verified like every origin
 * connection (same trust store, TLS 1.2+, SNI, hostname check), dialled through the destination
 * guard, and dropped from the pool on GOAWAY, error or idle timeout.
 */
export class H2OriginPool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();

  constructor(private readonly options: H2OriginPoolOptions) {}

  session(target: Target, servername: string | null): http2.ClientHttp2Session {
    const key = `${hostText(target.host)}:${target.port}:${servername ?? ''}`;
    const existing = this.sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(`https://${hostAuthorityText(target.host)}:${target.port}`, {
      createConnection: () =>
        tls.connect({
          host: hostText(target.host),
          port: target.port,
          ...(servername ? { servername } : {}),
          ALPNProtocols: ['h2'],
          secureContext: this.options.secureContext,
          minVersion: 'TLSv1.2',
          rejectUnauthorized: true,
          lookup: guardedLookup(this.options.egress, target.port) as unknown as tls.ConnectionOptions['lookup'],
        }),
    });
    const forget = (): void => {
      if (this.sessions.get(key) === session) this.sessions.delete(key);
    };
    // Errors reach the streams that were waiting; the session only has to leave the pool.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(this.options.idleTimeoutMs, () => session.close());
    this.sessions.set(key, session);
    return session;
  }

  destroy(): void {
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

/** Request header fields for an HTTP/2 origin: pseudo-headers first, names lower case. */
export function h2RequestHeaders(method: string, path: string, rawHeaders: readonly string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': 'https' };
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (name === 'host') {
      out[':authority'] = value;
      continue;
    }
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else out[name] = Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  return out;
}

/** An HTTP/2 response header object as a flat raw list, without pseudo-headers. */
export function rawFromH2Headers(headers: http2.IncomingHttpHeaders): string[] {
  const raw: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else raw.push(name, String(value));
  }
  return raw;
}
