import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionRecord } from '../audit/fields';
import type { RelayEnd } from '../relay/relay';
import type { GatewayError } from '../errors/gateway-error';
import type { Principal } from '../identity/types';
import type { Logger } from '../logging/logger';
import type { Decision, FrontendKind } from '../policy/types';
import { targetText, type Target } from '../protocol/authority';

/** How a flow ended; see ConnectionRecord.close. */
export type CloseKind = RelayEnd | 'refused' | 'shutdown';

let idPool = Buffer.alloc(0);
let idOffset = 0;

/** 12 url-safe characters (72 random bits); random bytes are drawn in batches. */
export function newFlowId(): string {
  if (idOffset + 9 > idPool.length) {
    idPool = randomBytes(9 * 256);
    idOffset = 0;
  }
  const id = idPool.toString('base64url', idOffset, idOffset + 9);
  idOffset += 9;
  return id;
}

/**
 * Client addresses learned from a PROXY protocol v2 header, by socket. A balancer's own socket
 * address says nothing about the client; audit records and per-client limits need the real one.
 */
const proxiedPeers = new WeakMap<Socket, { address: string; port: number }>();

export function setProxiedPeer(socket: Socket, peer: { address: string; port: number }): void {
  proxiedPeers.set(socket, peer);
}

export function peerAddress(socket: Socket): { address: string; port: number } {
  const proxied = proxiedPeers.get(socket);
  if (proxied) return proxied;
  const raw = socket.remoteAddress ?? 'unknown';
  // A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6; logs and per-client limits
  // should see the address people know.
  const address = raw.startsWith('::ffff:') && raw.includes('.') ? raw.slice(7) : raw;
  return { address, port: socket.remotePort ?? 0 };
}

/**
 * One client connection through the gateway, from accept to close: what the front-end
 * learned, what policy decided, what happened. It ends with exactly one connection record.
 */
export class Flow {
  readonly id = newFlowId();
  readonly startedAt = performance.now();
  readonly startTime = new Date();
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly log: Logger;
  target: Target | null = null;
  sni: string | null = null;
  alpn: readonly string[] | null = null;
  firstBytes: 'tls' | 'http' | 'other' | 'none' | null = null;
  /** Set when the flow entered the tunnel pipeline; its close then ends an active tunnel. */
  tunnelOpened = false;
  decision: Decision | null = null;
  /** Who authenticated for this flow (proxy authentication or SOCKS5), if anyone. */
  principal: Principal | null = null;
  upstreamAddress: string | null = null;
  requests = 0;
  bytesFromClient = 0;
  bytesToClient = 0;
  error: GatewayError | null = null;
  private closeKind: CloseKind | null = null;

  constructor(
    readonly frontend: FrontendKind,
    client: Socket,
    logger: Logger,
  ) {
    const peer = peerAddress(client);
    this.clientAddress = peer.address;
    this.clientPort = peer.port;
    this.log = logger.child({ flow: this.id });
  }

  get isClosed(): boolean {
    return this.closeKind !== null;
  }

  get durationMs(): number {
    return Math.round((performance.now() - this.startedAt) * 1000) / 1000;
  }

  /** Marks the flow closed; returns false if it already was (the first cause wins). */
  markClosed(kind: CloseKind): boolean {
    if (this.closeKind !== null) return false;
    this.closeKind = kind;
    return true;
  }

  toRecord(): ConnectionRecord {
    const decision = this.decision;
    return {
      type: 'connection',
      time: this.startTime.toISOString(),
      flow_id: this.id,
      frontend: this.frontend,
      client: this.clientAddress,
      client_port: this.clientPort,
      user: this.principal?.user ?? null,
      target: this.target ? targetText(this.target) : '',
      sni: this.sni,
      alpn: this.alpn,
      first_bytes: this.firstBytes,
      action: decision?.action ?? 'none',
      rule: decision?.rule?.id ?? null,
      decision_code: decision?.code ?? 'none',
      reason: decision?.reason ?? '',
      policy_version: decision?.policyVersion ?? '',
      upstream_address: this.upstreamAddress,
      bytes_from_client: this.bytesFromClient,
      bytes_to_client: this.bytesToClient,
      duration_ms: this.durationMs,
      close: this.closeKind ?? 'error',
      error: this.error ? `${this.error.code}: ${this.error.message}` : null,
      requests: this.requests,
    };
  }
}
