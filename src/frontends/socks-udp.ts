import type { Socket } from 'node:net';
import type { UdpDestinationEntry } from '../audit/record-fields';
import { udpAssociationRecord } from '../audit/records';
import type { RecordWriter } from '../audit/sink';
import { bindClientRelay, type ClientRelaySocket, type UdpPeer, type UdpRemoteInfo, type UdpResolver, type UdpSendRefusal, UdpOriginLeg } from '../egress/udp';
import type { CloseKind, Flow } from '../flow/flow';
import { publish } from '../observability/events';
import { decide } from '../policy/decide';
import type { CompiledPolicy } from '../policy/types';
import { addressText, bracketedAddress } from '../protocol/address-text';
import { normaliseHost } from '../protocol/host';
import type { SocksBoundAddress } from '../protocol/socks5-codec';
import { encodeSocks5DatagramHeader, parseSocks5Datagram } from '../protocol/socks5-udp';
import type { SocksTarget } from '../protocol/socks-wire';
import { type Target, targetText } from '../protocol/target';

/** What UDP ASSOCIATE needs from the gateway (gateway.ts wires it). */
export interface SocksUdpOptions {
  /** The policy in force now; each datagram is decided under the policy of its moment. */
  readonly policy: () => CompiledPolicy;
  /** Resolution, destination guard and loop check (the egress door). */
  readonly resolver: UdpResolver;
  readonly audit: RecordWriter;
  /** `limits.socks_udp_idle_timeout`: no datagram either way for this long ends the association. */
  readonly idleTimeoutMs: number;
  /** `limits.socks_udp_max_datagrams`: datagrams relayed (both ways together) per association. */
  readonly maxDatagrams: number;
  /** `limits.socks_udp_max_bytes`: payload bytes relayed (both ways together) per association. */
  readonly maxBytes: number;
}

/**
 * Why a datagram was dropped: the label of `tollgate_socks_udp_dropped_total` and the keys of
 * the association record's `dropped`. A fixed set, so metric labels stay bounded.
 */
export type UdpDropReason =
  | 'stranger' // to the relay port from an address or port other than the association's client
  | 'malformed' // a header that does not parse (RFC 1928 section 7), or an invalid name
  | 'fragment' // FRAG != 0: fragments are not reassembled
  | 'denied' // the policy denies the destination
  | 'port' // the port is not in allowed_ports.udp nor in the matching rule's ports
  | 'forbidden' // the destination guard, the loop check or DNS refused every address
  | 'destinations' // the association already sent to its maximum of distinct destinations
  | 'origin-stranger' // to the origin socket from an address:port the client never sent to
  | 'send-failed' // the kernel would not send it (no route, unreachable, too large)
  | 'after-end'; // arrived while the association was ending

/** Distinct address:port pairs one association may send to (and hear from). */
const MAX_DESTINATIONS = 256;
/** Drops logged one by one per association; the rest are counted (record and metric). */
const MAX_DROP_LOG_LINES = 20;

type EndKind = 'client-closed' | 'timeout' | 'limit' | 'error';

interface DestinationStats extends Omit<UdpDestinationEntry, 'datagrams_to_origin' | 'bytes_to_origin' | 'datagrams_from_origin' | 'bytes_from_origin'> {
  datagramsTo: number;
  bytesTo: number;
  datagramsFrom: number;
  bytesFrom: number;
}

function targetOf(requested: SocksTarget): Target | null {
  const host = normaliseHost(requested.kind === 'domain' ? requested.name : requested.address);
  return host.ok ? { host: host.host, port: requested.port } : null;
}

/**
 * One SOCKS5 UDP association (RFC 1928 section 7): a relay port on the listener's address for
 * one client, every datagram decided by the policy and sent through the egress door, replies
 * relayed back only from where the client sent. It lives as long as its TCP control connection
 * (and no longer than the idle timeout), and writes one `udp_association` record at its end.
 */
export class UdpAssociation {
  private relay: ClientRelaySocket | null = null;
  private readonly leg: UdpOriginLeg;
  private readonly clientAddress: string;
  /** The client's UDP source port: the one it declared, else the first it sent from. */
  private clientPort: number | null;
  private readonly destinations = new Map<string, DestinationStats>();
  /** Origin address:port -> the destination entry it answers for. */
  private readonly byPeer = new Map<string, DestinationStats>();
  private readonly dropped: Record<string, number> = {};
  private dropLogLines = 0;
  private datagramsFromClient = 0;
  private datagramsToClient = 0;
  private bytesFromClient = 0;
  private bytesToClient = 0;
  private relayAddress = '';
  private idleTimer: NodeJS.Timeout | null = null;
  private ended: EndKind | null = null;
  private resolveEnd!: (kind: EndKind) => void;
  private readonly endPromise = new Promise<EndKind>((resolve) => (this.resolveEnd = resolve));

  constructor(
    private readonly flow: Flow,
    private readonly control: Socket,
    declaredPort: number,
    private readonly options: SocksUdpOptions,
  ) {
    this.clientAddress = flow.clientAddress;
    this.clientPort = declaredPort === 0 ? null : declaredPort;
    this.leg = new UdpOriginLeg({
      resolver: options.resolver,
      maxPeers: MAX_DESTINATIONS,
      onReply: (from, payload) => this.fromOrigin(from, payload),
      onStranger: (from) => this.drop('origin-stranger', { from: `${bracketedAddress(from.address)}:${from.port}` }),
      onError: (err) => this.end('error', err.message),
      onSendError: (to, err) => this.drop('send-failed', { target: `${bracketedAddress(to.address)}:${to.port}`, reason: err.message }),
    });
  }

  /**
   * Binds the relay port on the address the client reached the listener on; returns it for the
   * reply (BND.ADDR, BND.PORT), or throws when no port could be bound.
   */
  async open(): Promise<SocksBoundAddress> {
    const local = addressText(this.control.localAddress ?? '0.0.0.0');
    const relay = await bindClientRelay(local);
    this.relay = relay;
    const bound = relay.address();
    this.relayAddress = `${bracketedAddress(bound.address)}:${bound.port}`;
    relay.on('message', (message: Buffer, rinfo: UdpRemoteInfo) => this.fromClient(message, rinfo));
    relay.on('error', (err) => this.end('error', err.message));
    return { kind: bound.family === 'IPv6' ? 'ipv6' : 'ipv4', address: bound.address, port: bound.port };
  }

  /** Runs until the control connection ends, the idle timeout, a limit or an error. */
  async run(): Promise<CloseKind> {
    const onControlGone = (): void => this.end('client-closed');
    this.control.once('end', onControlGone);
    this.control.once('close', onControlGone);
    // RFC 1928 gives the control connection no further messages: whatever comes is discarded,
    // but read, so that the client's FIN is seen.
    this.control.on('data', () => undefined);
    this.control.resume();
    if (this.control.destroyed) this.end('client-closed');
    this.touch();
    this.flow.log.info({ relay_address: this.relayAddress, client_udp_port: this.clientPort }, 'SOCKS5 UDP association open');
    const kind = await this.endPromise;
    return kind === 'limit' ? 'refused' : kind;
  }

  /** Ends the association (once): closes both UDP sides and the control connection, writes the record. */
  end(kind: EndKind, detail?: string): void {
    if (this.ended) return;
    this.ended = kind;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.relay?.close();
    this.leg.close();
    this.control.end();
    setTimeout(() => this.control.destroy(), 1000).unref();
    this.flow.transferred(this.bytesFromClient, this.bytesToClient);
    const policy = this.options.policy();
    const record = udpAssociationRecord({
      flowId: this.flow.id,
      frontend: 'socks',
      clientAddress: this.flow.clientAddress,
      clientPort: this.flow.clientPort,
      user: this.flow.principal?.user ?? null,
      startTime: this.flow.startTime,
      relayAddress: this.relayAddress,
      clientUdp: this.clientPort === null ? null : `${bracketedAddress(this.clientAddress)}:${this.clientPort}`,
      destinations: [...this.destinations.values()].map((d) => ({
        target: d.target,
        address: d.address,
        action: d.action,
        rule: d.rule,
        datagrams_to_origin: d.datagramsTo,
        bytes_to_origin: d.bytesTo,
        datagrams_from_origin: d.datagramsFrom,
        bytes_from_origin: d.bytesFrom,
      })),
      datagramsFromClient: this.datagramsFromClient,
      datagramsToClient: this.datagramsToClient,
      bytesFromClient: this.bytesFromClient,
      bytesToClient: this.bytesToClient,
      dropped: { ...this.dropped },
      policyVersion: policy.version,
      durationMs: this.flow.durationMs,
      close: kind,
    });
    this.options.audit.write(record);
    publish('tollgate:socks:udp-closed', { close: kind });
    this.flow.log.info(
      { close: kind, ...(detail ? { reason: detail } : {}), datagrams_from_client: this.datagramsFromClient, datagrams_to_client: this.datagramsToClient, dropped: record.dropped },
      'SOCKS5 UDP association closed',
    );
    this.resolveEnd(kind);
  }

  private touch(): void {
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.flow.log.info({ limit: 'limits.socks_udp_idle_timeout', frontend: 'socks', ms: this.options.idleTimeoutMs }, 'limit reached: limits.socks_udp_idle_timeout');
      publish('tollgate:limit:breached', { limit: 'socks_udp_idle_timeout', frontend: 'socks' });
      this.end('timeout');
    }, this.options.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** Counts one more datagram of `bytes` against the limits; false (and the end) when over. */
  private withinLimits(bytes: number): boolean {
    const datagrams = this.datagramsFromClient + this.datagramsToClient + 1;
    const total = this.bytesFromClient + this.bytesToClient + bytes;
    const key = datagrams > this.options.maxDatagrams ? 'socks_udp_max_datagrams' : total > this.options.maxBytes ? 'socks_udp_max_bytes' : null;
    if (key === null) return true;
    this.flow.log.info({ limit: `limits.${key}`, frontend: 'socks' }, `limit reached: limits.${key}`);
    publish('tollgate:limit:breached', { limit: key, frontend: 'socks' });
    this.end('limit', `limits.${key} reached`);
    return false;
  }

  private drop(reason: UdpDropReason, fields: Record<string, unknown>): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
    publish('tollgate:socks:udp-dropped', { reason });
    if (this.dropLogLines < MAX_DROP_LOG_LINES) {
      this.dropLogLines++;
      const last = this.dropLogLines === MAX_DROP_LOG_LINES ? ' (further drops of this association are only counted)' : '';
      this.flow.log.info({ drop_reason: reason, ...fields }, `SOCKS5 UDP datagram dropped${last}`);
    }
  }

  private fromClient(message: Buffer, rinfo: UdpRemoteInfo): void {
    if (this.ended) return;
    const from = `${bracketedAddress(rinfo.address)}:${rinfo.port}`;
    // Only the client that opened the association: its TCP peer address, and its declared
    // port (else the first port it sent from, so another program on its host cannot join).
    if (addressText(rinfo.address) !== this.clientAddress || (this.clientPort !== null && rinfo.port !== this.clientPort)) {
      this.drop('stranger', { from, reason: `only ${bracketedAddress(this.clientAddress)}${this.clientPort === null ? '' : `:${this.clientPort}`} may use this relay port` });
      return;
    }
    const parsed = parseSocks5Datagram(message);
    if (parsed.kind === 'invalid') {
      this.drop('malformed', { from, reason: parsed.reason });
      return;
    }
    const { frag, payload } = parsed.value;
    if (frag !== 0) {
      this.drop('fragment', { from, reason: `FRAG is ${frag}: fragmented datagrams are not reassembled` });
      return;
    }
    const target = targetOf(parsed.value.target);
    if (!target) {
      this.drop('malformed', { from, reason: 'the destination is not a valid name or address' });
      return;
    }
    this.clientPort ??= rinfo.port;
    const decision = decide({ target: target.host, port: target.port, sni: null, frontend: 'socks-udp', principal: this.flow.principal }, this.options.policy());
    const text = targetText(target);
    if (decision.action === 'deny') {
      this.drop(decision.code === 'port' ? 'port' : 'denied', { target: text, rule: decision.rule?.id ?? null, reason: decision.reason });
      return;
    }
    if (!this.withinLimits(payload.length)) return;
    this.datagramsFromClient++;
    this.bytesFromClient += payload.length;
    this.touch();
    // UDP cannot be decrypted: splice and inspect both relay the datagram; the record says which.
    void this.leg.send(target, payload).then(this.sent(text, payload.length, decision.action, decision.rule?.id ?? null), (err: Error) => this.refused(text, payload.length, 'forbidden', err.message));
  }

  /** What happens once a datagram from the client was sent, or refused by the egress door. */
  private sent(text: string, bytes: number, action: string, rule: string | null): (sent: UdpPeer | UdpSendRefusal) => void {
    return (sent) => {
      if (this.ended) return;
      if (!('port' in sent)) {
        this.refused(text, bytes, sent.kind === 'too-many-destinations' ? 'destinations' : 'forbidden', sent.reason);
        return;
      }
      const entry = this.destinationFor(text, sent, action, rule);
      entry.datagramsTo++;
      entry.bytesTo += bytes;
      publish('tollgate:socks:udp-relayed', { direction: 'to-origin', bytes });
    };
  }

  /** A datagram counted as relayed (for the limits) that the egress door refused: uncounted, dropped. */
  private refused(text: string, bytes: number, reason: UdpDropReason, detail: string): void {
    if (this.ended) return;
    this.datagramsFromClient--;
    this.bytesFromClient -= bytes;
    this.drop(reason, { target: text, reason: detail });
  }

  private destinationFor(target: string, peer: UdpPeer, action: string, rule: string | null): DestinationStats {
    const peerKey = `${peer.address}|${peer.port}`;
    const key = `${target}|${peerKey}`;
    let entry = this.destinations.get(key);
    if (!entry) {
      entry = { target, address: peer.address, action, rule, datagramsTo: 0, bytesTo: 0, datagramsFrom: 0, bytesFrom: 0 };
      this.destinations.set(key, entry);
    }
    this.byPeer.set(peerKey, entry);
    return entry;
  }

  private fromOrigin(from: UdpPeer, payload: Buffer): void {
    if (this.ended) return;
    const relay = this.relay;
    const header = encodeSocks5DatagramHeader(from.family, from.address, from.port);
    if (!relay || this.clientPort === null || header === null) {
      this.drop('after-end', { from: `${bracketedAddress(from.address)}:${from.port}` });
      return;
    }
    if (!this.withinLimits(payload.length)) return;
    this.datagramsToClient++;
    this.bytesToClient += payload.length;
    this.touch();
    const entry = this.byPeer.get(`${from.address}|${from.port}`);
    if (entry) {
      entry.datagramsFrom++;
      entry.bytesFrom += payload.length;
    }
    publish('tollgate:socks:udp-relayed', { direction: 'to-client', bytes: payload.length });
    relay.send([header, payload], this.clientPort, this.clientAddress, (err) => {
      if (err) this.drop('send-failed', { to: `${bracketedAddress(this.clientAddress)}:${this.clientPort}`, reason: err.message });
    });
  }
}
