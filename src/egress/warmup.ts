import type { Target } from '../protocol/target';
import { hostText } from '../protocol/host';
import type { Egress, OriginTlsOptions } from './egress';
import type { H1Pools } from './h1-pools';
import type { H2Sessions } from './h2-sessions';

export interface WarmupOptions {
  /** How long an origin's ALPN answer is reused; origins rarely change protocols. */
  readonly ttlMs: number;
  readonly maxEntries: number;
}

interface Entry {
  readonly h2: boolean;
  readonly expires: number;
}

/** What the inspector is about to do for one tunnel, as far as the origin side is concerned. */
export interface WarmupRequest {
  readonly target: Target;
  /** SNI and verified name; null for an address target. */
  readonly servername: string | null;
  /** False only under a rule with `upstream_insecure` (which never uses HTTP/2). */
  readonly verifyCertificate: boolean;
  /** The client offered h2 in its ClientHello. */
  readonly clientOffersH2: boolean;
}

/**
 * Gets the origin side ready while a newly inspected tunnel's certificate is minted and the
 * client's handshake runs, instead of after them:
 *
 * - **ALPN**: whether the origin speaks HTTP/2, learned by a verified TLS handshake offering
 *   [h2, http/1.1] and cached per host, port and server name. The inspector must know before it
 *   answers the client's ClientHello, so that `h2` is offered to a client only when the origin
 *   would negotiate it too (Node's ALPNCallback is synchronous and cannot wait for an origin).
 *   A failed handshake answers "no": the client then speaks HTTP/1.1 and the ordinary
 *   forwarding path reports the origin's failure.
 * - **The first connection**: when no pooled connection (or HTTP/2 session) to the origin is
 *   ready, one is opened ahead through the egress door (`Egress.openAhead`) and the first
 *   request's pool takes it. The ALPN handshake is that connection, not an extra one.
 */
export class OriginWarmup {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<boolean>>();

  constructor(
    private readonly egress: Egress,
    private readonly h1: H1Pools,
    private readonly h2: H2Sessions | null,
    private readonly options: WarmupOptions,
  ) {}

  /**
   * Resolves to whether h2 may be offered to this client (only after the ALPN answer, when the
   * client offered h2); the connection opened ahead for HTTP/1.1 is not waited for.
   */
  prepare(request: WarmupRequest): Promise<boolean> {
    const { target, servername, verifyCertificate } = request;
    const tls = (alpn: readonly string[]): OriginTlsOptions => ({ servername, verifyCertificate, alpn });
    const mayUseH2 = request.clientOffersH2 && verifyCertificate && this.h2 !== null;
    if (!mayUseH2) {
      this.openAheadForHttp1(target, tls(['http/1.1']));
      return Promise.resolve(false);
    }
    const key = `${hostText(target.host)}:${target.port}:${servername ?? ''}`;
    const cached = this.entries.get(key);
    if (cached && cached.expires > Date.now()) {
      if (!cached.h2) this.openAheadForHttp1(target, tls(['http/1.1']));
      else if (!this.h2!.has(target, servername) && !this.egress.hasAhead(target, tls(['h2']))) void this.egress.openAhead(target, tls(['h2']));
      return Promise.resolve(cached.h2);
    }
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.egress.openAhead(target, tls(['h2', 'http/1.1'])).then((protocol) => {
        this.inFlight.delete(key);
        // A failed handshake is remembered as "no" too: tunnels to a failing origin do not each
        // wait for another attempt before their own handshake.
        const h2 = protocol === 'h2';
        if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
        this.entries.set(key, { h2, expires: Date.now() + this.options.ttlMs });
        return h2;
      });
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private openAheadForHttp1(target: Target, tls: OriginTlsOptions): void {
    if (this.h1.hasIdle(target, tls) || this.egress.hasAhead(target, tls)) return;
    void this.egress.openAhead(target, tls);
  }
}
