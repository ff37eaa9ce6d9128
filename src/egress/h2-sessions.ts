import http2 from 'node:http2';
import type { Target } from '../protocol/target';
import { hostAuthorityText, hostText } from '../protocol/host';
import type { Egress } from './egress';

/** Header fields an origin's HTTP/2 response may carry: beyond what any real response needs, bounded by size too. */
const ORIGIN_MAX_HEADER_PAIRS = 2_000;
export interface H2SessionOptions {
  readonly idleTimeoutMs: number;
}

/**
 * One multiplexed HTTP/2 session per origin (host, port, server name), for requests that
 * arrive over HTTP/2 from clients when the origin speaks h2. The connection comes from the
 * egress door like every other (guard, loop check, connect deadline, verified TLS with ALPN
 * h2); concurrent requests for a session still connecting share it. Sessions leave the pool on
 * GOAWAY, error, close or idle timeout.
 */
export class H2Sessions {
  private readonly sessions = new Map<string, Promise<http2.ClientHttp2Session>>();

  constructor(
    private readonly egress: Egress,
    private readonly options: H2SessionOptions,
  ) {}

  /** True when a session to this origin is open or opening. */
  has(target: Target, servername: string | null): boolean {
    return this.sessions.has(this.key(target, servername));
  }

  /** The way out (direct, or through a parent's CONNECT: egress.ts) is part of the key, as in h1-pools.ts. */
  private key(target: Target, servername: string | null): string {
    return `${this.egress.routeOf(target).join(',') || 'direct'}|${hostText(target.host)}:${target.port}:${servername ?? ''}`;
  }

  session(target: Target, servername: string | null): Promise<http2.ClientHttp2Session> {
    const key = this.key(target, servername);
    const existing = this.sessions.get(key);
    if (existing) return existing;
    const opening = this.open(target, servername, key);
    this.sessions.set(key, opening);
    opening.catch(() => this.forget(key, opening));
    return opening;
  }

  private async open(target: Target, servername: string | null, key: string): Promise<http2.ClientHttp2Session> {
    const { socket } = await this.egress.connect(target, { tls: { servername, verifyCertificate: true, alpn: ['h2'] } });
    // Node's client refuses a response with more than 128 header fields by default; the
    // HTTP/1.1 leg (undici) limits only their size. The same response must pass either leg.
    const session = http2.connect(`https://${hostAuthorityText(target.host)}:${target.port}`, { createConnection: () => socket, maxHeaderListPairs: ORIGIN_MAX_HEADER_PAIRS });
    const entry = this.sessions.get(key);
    const forget = (): void => {
      if (entry) this.forget(key, entry);
    };
    // Errors reach the streams that were waiting; the session only has to leave the pool.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(this.options.idleTimeoutMs, () => session.close());
    return session;
  }

  private forget(key: string, entry: Promise<http2.ClientHttp2Session>): void {
    if (this.sessions.get(key) === entry) this.sessions.delete(key);
  }

  destroy(): void {
    for (const entry of this.sessions.values())
      entry.then(
        (session) => session.destroy(),
        () => undefined,
      );
    this.sessions.clear();
  }
}
