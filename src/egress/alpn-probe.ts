import type { TLSSocket } from 'node:tls';
import type { Target } from '../protocol/target';
import { hostText } from '../protocol/host';
import type { Egress } from './egress';

export interface AlpnProbeOptions {
  /** How long an answer is reused; origins rarely change protocols. */
  readonly ttlMs: number;
  readonly maxEntries: number;
}

interface Entry {
  readonly h2: boolean;
  readonly expires: number;
}

/**
 * Whether an origin speaks HTTP/2, learned by a TLS handshake offering [h2, http/1.1] and
 * cached per host, port and SNI. The inspector asks before it starts the client's handshake,
 * so that `h2` is offered to a client only when the origin would negotiate it too. Asking
 * first (rather than from an ALPNCallback during the client handshake) is needed because
 * Node's ALPNCallback is synchronous and cannot wait for an origin connection; the SNI it
 * would key on is already known from the peeked ClientHello. A failed probe answers "no": the
 * client then speaks HTTP/1.1 and the ordinary forwarding path reports the origin's failure.
 */
export class OriginAlpnCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<boolean>>();

  constructor(
    private readonly egress: Egress,
    private readonly options: AlpnProbeOptions,
  ) {}

  speaksH2(target: Target, servername: string | null): Promise<boolean> {
    const key = `${hostText(target.host)}:${target.port}:${servername ?? ''}`;
    const cached = this.entries.get(key);
    if (cached && cached.expires > Date.now()) return Promise.resolve(cached.h2);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.probe(target, servername).then((h2) => {
        this.inFlight.delete(key);
        if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
        this.entries.set(key, { h2, expires: Date.now() + this.options.ttlMs });
        return h2;
      });
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  /** The probe trusts exactly what requests will: it dials through the same door and context. */
  private async probe(target: Target, servername: string | null): Promise<boolean> {
    try {
      const { socket } = await this.egress.connect(target, { tls: { servername, verifyCertificate: true, alpn: ['h2', 'http/1.1'] } });
      const h2 = (socket as TLSSocket).alpnProtocol === 'h2';
      socket.destroy();
      return h2;
    } catch {
      return false;
    }
  }
}
