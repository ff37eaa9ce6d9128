import dgram from 'node:dgram';
import type { Target } from '../protocol/target';
import type { ResolvedAddress } from './resolve';

/** The relay socket's types, for front-ends, which may not touch node:dgram themselves. */
export type ClientRelaySocket = dgram.Socket;
export type UdpRemoteInfo = dgram.RemoteInfo;

/**
 * UDP for SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): every UDP socket the gateway opens is made
 * here, because sending a datagram where a client asks is egress like a TCP connect. Before a
 * datagram leaves, its destination is resolved by the gateway and checked by the destination
 * guard and the loop check (Egress.resolveAllowed, the same door as TCP); a reply is passed on
 * only when it comes from an address and port a datagram was sent to.
 */

/** An address and port a datagram came from or goes to. */
export interface UdpPeer {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

/** The part of Egress that UDP needs: resolution, destination guard and loop check in one. */
export interface UdpResolver {
  resolveAllowed(target: Target): Promise<readonly ResolvedAddress[]>;
}

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

function peerKey(address: string, port: number): string {
  return `${address}|${port}`;
}

/**
 * The client-facing relay socket of one association, bound on the address the client reached
 * the SOCKS listener on, with a port the kernel picks. It only receives from the client and
 * sends to it; origins are reached through a UdpOriginLeg.
 */
export function bindClientRelay(address: string): Promise<ClientRelaySocket> {
  const socket = familyOf(address) === 6 ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port: 0, exclusive: true }, () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
  });
}

/** Why a datagram was not sent. */
export type UdpSendRefusal = { readonly kind: 'refused'; readonly code: string; readonly reason: string } | { readonly kind: 'too-many-destinations'; readonly reason: string };

export interface UdpOriginLegOptions {
  readonly resolver: UdpResolver;
  /** A datagram from an address and port this leg sent to. */
  readonly onReply: (from: UdpPeer, payload: Buffer) => void;
  /** A datagram from anywhere else: dropped; the caller counts and logs it. */
  readonly onStranger: (from: UdpPeer) => void;
  /** A socket error (not per datagram): the association should end. */
  readonly onError: (err: Error) => void;
  /** One datagram could not be sent (no route, refused by the kernel): dropped, the association goes on. */
  readonly onSendError: (to: UdpPeer, err: Error) => void;
  /** How many distinct address:port pairs the leg may send to (and accept replies from). */
  readonly maxPeers: number;
}

/**
 * The origin side of one association: one unconnected socket per address family, opened on
 * first use and bound to an ephemeral port on every interface (the kernel picks the source
 * address by route, as for TCP).
 */
export class UdpOriginLeg {
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private readonly peers = new Set<string>();
  private closed = false;

  constructor(private readonly options: UdpOriginLegOptions) {}

  /** The address:port pairs sent to so far. */
  get peerCount(): number {
    return this.peers.size;
  }

  /**
   * Resolves `target` through the destination guard and sends `payload` to its first allowed
   * address. Resolves with the address used, or a refusal (guard, loop, DNS, limit).
   */
  async send(target: Target, payload: Buffer): Promise<UdpPeer | UdpSendRefusal> {
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await this.options.resolver.resolveAllowed(target);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      return { kind: 'refused', code: e.code ?? 'TG_ERR_INTERNAL', reason: e.message ?? String(err) };
    }
    const remote = addresses[0]!;
    const key = peerKey(remote.address, target.port);
    if (!this.peers.has(key) && this.peers.size >= this.options.maxPeers) {
      return { kind: 'too-many-destinations', reason: `the association already sent to ${this.peers.size} address:port pairs` };
    }
    if (this.closed) return { kind: 'refused', code: 'association-ended', reason: 'the association has ended' };
    this.peers.add(key);
    const socket = await this.socketFor(remote.family);
    if (this.closed) return { kind: 'refused', code: 'association-ended', reason: 'the association has ended' };
    const peer: UdpPeer = { address: remote.address, family: remote.family, port: target.port };
    // With a callback a failed send is this datagram's failure, not an 'error' event that would
    // end the whole association.
    socket.send(payload, target.port, remote.address, (err) => {
      if (err) this.options.onSendError(peer, err);
    });
    return peer;
  }

  close(): void {
    this.closed = true;
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private async socketFor(family: 4 | 6): Promise<dgram.Socket> {
    const existing = this.sockets.get(family);
    if (existing) return existing;
    // ipv6Only: an IPv6 socket carries IPv6 only (IPv4 has its own); udp4 refuses the flag (EINVAL).
    const socket = family === 6 ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket('udp4');
    this.sockets.set(family, socket);
    socket.on('error', (err) => this.options.onError(err));
    socket.on('message', (message: Buffer, rinfo: dgram.RemoteInfo) => {
      const from: UdpPeer = { address: rinfo.address, family: rinfo.family === 'IPv6' ? 6 : 4, port: rinfo.port };
      if (this.peers.has(peerKey(rinfo.address, rinfo.port))) this.options.onReply(from, message);
      else this.options.onStranger(from);
    });
    // send() binds implicitly, but binding first means the 'message' listener is in place
    // before the first datagram leaves, so no early reply is lost.
    await new Promise<void>((resolve) => socket.bind({ port: 0, exclusive: true }, resolve));
    // The association may have ended while the socket was being bound.
    if (this.closed) socket.close();
    return socket;
  }
}
