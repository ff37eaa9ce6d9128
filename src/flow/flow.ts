import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionRecord } from '../audit/record-fields';
import { connectionRecord, type StreamFacts } from '../audit/records';
import type { RecordWriter } from '../audit/sink';
import { publish } from '../observability/events';
import type { RelayEnd } from '../relay/relay';
import { GatewayError } from '../errors/gateway-error';
import type { Principal } from '../identity/principal';
import type { Logger } from '../logging/logger';
import type { Decision, FrontendKind } from '../policy/types';
import { targetText, type Target } from '../protocol/target';
import { addressText } from '../protocol/address-text';
import type { OpenFlows } from './open-flows';

/** How a flow ended; see ConnectionRecord.close. */
export type CloseKind = RelayEnd | 'refused' | 'shutdown';

let idPool = Buffer.alloc(0);
let idOffset = 0;

/** 12 url-safe characters (72 random bits); random bytes are drawn in batches. */
function newFlowId(): string {
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
  // A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6; logs and per-client limits
  // see the address people know (address-text.ts).
  return { address: addressText(socket.remoteAddress ?? 'unknown'), port: socket.remotePort ?? 0 };
}

/** Why a flow or request the end of a SIGTERM drain cut did not complete (docs/audit.md). */
export function shutdownError(): GatewayError {
  return new GatewayError('TG_ERR_SHUTTING_DOWN', 'relay', 'cut at the end of limits.shutdown_grace: the gateway is shutting down');
}

/** What the first bytes of a tunnel were. */
export type FirstBytes = 'tls' | 'http' | 'other' | 'none';

/** What every flow writes to when it closes. */
export interface FlowServices {
  readonly logger: Logger;
  readonly audit: RecordWriter;
  /**
   * Whether the `flow closed` log line carries the connection record (default true). False when
   * the audit trail itself goes to stdout, where the log goes too: the record would be printed
   * twice.
   */
  readonly recordInLog?: boolean;
  /** The registry of open flows the gateway cuts and waits for at the end of a SIGTERM drain. */
  readonly open?: OpenFlows;
}

/**
 * One client connection through the gateway, from accept to close: what the front-end
 * learned, what policy decided, what happened. Its facts are recorded through the methods
 * below, each named for the moment it is learned, and read back through getters: nothing
 * outside this file assigns them. It ends with exactly one connection record, written by
 * close(), which runFlow (lifecycle.ts) calls once for every flow.
 */
export class Flow {
  readonly id = newFlowId();
  readonly startedAt = performance.now();
  readonly startTime = new Date();
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly log: Logger;
  private targetFact: Target | null = null;
  private sniFact: string | null = null;
  private alpnFact: readonly string[] | null = null;
  private firstBytesFact: FirstBytes | null = null;
  private decisionFact: Decision | null = null;
  private decisionPublished = false;
  private principalFact: Principal | null = null;
  private upstream: string | null = null;
  private requestCount = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private errorFact: GatewayError | null = null;
  private tunnel = false;
  private closed: CloseKind | null = null;
  private streamFact: StreamFacts | null = null;
  private cutAtShutdown = false;
  private forcedClose = false;

  constructor(
    readonly frontend: FrontendKind,
    client: Socket,
    private readonly services: FlowServices,
  ) {
    const peer = peerAddress(client);
    this.clientAddress = peer.address;
    this.clientPort = peer.port;
    this.log = services.logger.child({ flow_id: this.id });
    services.open?.add(this, client);
  }

  get target(): Target | null {
    return this.targetFact;
  }
  get sni(): string | null {
    return this.sniFact;
  }
  get alpn(): readonly string[] | null {
    return this.alpnFact;
  }
  get firstBytes(): FirstBytes | null {
    return this.firstBytesFact;
  }
  get decision(): Decision | null {
    return this.decisionFact;
  }
  /** Who authenticated for this flow (proxy authentication or SOCKS5), if anyone. */
  get principal(): Principal | null {
    return this.principalFact;
  }
  get upstreamAddress(): string | null {
    return this.upstream;
  }
  get requests(): number {
    return this.requestCount;
  }
  get error(): GatewayError | null {
    return this.errorFact;
  }
  get isClosed(): boolean {
    return this.closed !== null;
  }
  /** Whether the gateway cut this flow at the end of a SIGTERM drain (its record says `close: shutdown`). */
  get isCutByShutdown(): boolean {
    return this.cutAtShutdown;
  }
  get durationMs(): number {
    return Math.round((performance.now() - this.startedAt) * 1000) / 1000;
  }

  /** The destination the front-end learned (CONNECT, SOCKS, SNI, Host, absolute-form). */
  learnedTarget(target: Target): void {
    this.targetFact = target;
  }

  authenticated(principal: Principal): void {
    this.principalFact = principal;
  }

  /** The flow entered the tunnel pipeline: it counts as an active tunnel until it closes. */
  openedTunnel(): void {
    if (this.tunnel) return;
    this.tunnel = true;
    publish('tollgate:tunnel:opened', { frontend: this.frontend });
  }

  /** What the client's first bytes were, and the ClientHello's server name and ALPN if TLS. */
  peeked(firstBytes: FirstBytes, hello: { readonly sni: string | null; readonly alpn: readonly string[] | null } | null = null): void {
    this.firstBytesFact = firstBytes;
    if (hello) {
      this.sniFact = hello.sni;
      this.alpnFact = hello.alpn;
    }
  }

  /**
   * The decision in force. A tunnel's decision may be revised once the ClientHello is read;
   * `final` publishes it (tollgate:flow:decided): once for a tunnel, once per request for a
   * plain-HTTP connection. A flow that closes with an unpublished decision publishes it then.
   */
  decided(decision: Decision, final: boolean): void {
    this.decisionFact = decision;
    this.decisionPublished = false;
    if (final) this.publishDecision();
  }

  /** The address of the origin connection, or null when it was dropped (inspection dials anew). */
  connected(address: string | null): void {
    this.upstream = address;
  }

  /** The next request on this connection; returns its id. */
  nextRequest(): string {
    this.requestCount++;
    return `${this.id}-${this.requestCount}`;
  }

  /**
   * A request of this flow began: `finish` writes its record. The function returned is called
   * once it is written; a SIGTERM drain waits for it (open-flows.ts).
   */
  requestStarted(finish: () => void): () => void {
    return this.services.open?.requestStarted(finish) ?? (() => undefined);
  }

  /** Why the flow failed or was refused; the first cause is kept. */
  failed(error: GatewayError): void {
    this.errorFact ??= error;
  }

  /** Bytes to and from the client over the flow's life. */
  transferred(fromClient: number, toClient: number): void {
    this.bytesIn = fromClient;
    this.bytesOut = toClient;
  }

  /** The tunnel was relayed as a stream that is not HTTP: protocol guess, bytes, DLP findings. */
  streamed(facts: StreamFacts): void {
    this.streamFact = facts;
  }

  /**
   * The SIGTERM drain ended with this flow still open: the gateway cuts it (open-flows.ts).
   * However its stages then see the end (a reset, a close, an error), the record says
   * `close: shutdown`; a flow the gateway had already refused stays `refused`.
   */
  cutByShutdown(): void {
    this.cutAtShutdown = true;
    this.failed(shutdownError());
  }

  /**
   * A flow cut at shutdown whose socket never reported its close within the bound: its record is
   * written now, with the client socket's byte counts, so the audit sink can close without losing
   * it. runFlow's own close, should it still come, is then ignored (and only then).
   */
  closeAtShutdown(bytesFromClient: number, bytesToClient: number): void {
    if (this.closed !== null) return;
    this.cutByShutdown();
    this.forcedClose = true;
    if (bytesFromClient > this.bytesIn || bytesToClient > this.bytesOut) this.transferred(bytesFromClient, bytesToClient);
    this.close('shutdown');
  }

  /**
   * Ends the flow and writes its one connection record (audit and operational log). Only
   * runFlow calls this, once; a second call is a bug, not a race to be ignored (except after
   * closeAtShutdown, which wrote the record in runFlow's place).
   */
  close(requested: CloseKind): ConnectionRecord | null {
    if (this.closed !== null) {
      if (this.forcedClose) return null;
      throw new Error(`flow ${this.id} closed twice (${this.closed}, then ${requested})`);
    }
    const kind: CloseKind = this.cutAtShutdown && requested !== 'refused' ? 'shutdown' : requested;
    this.closed = kind;
    if (this.decisionFact && !this.decisionPublished) this.publishDecision();
    if (this.tunnel) publish('tollgate:tunnel:closed', { frontend: this.frontend });
    const record = connectionRecord({
      flowId: this.id,
      frontend: this.frontend,
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      user: this.principalFact?.user ?? null,
      startTime: this.startTime,
      target: this.targetFact ? targetText(this.targetFact) : '',
      sni: this.sniFact,
      alpn: this.alpnFact,
      firstBytes: this.firstBytesFact,
      decision: this.decisionFact,
      upstreamAddress: this.upstream,
      bytesFromClient: this.bytesIn,
      bytesToClient: this.bytesOut,
      durationMs: this.durationMs,
      close: kind,
      error: this.errorFact,
      requests: this.requestCount,
      stream: this.streamFact,
    });
    publish('tollgate:flow:closed', {
      frontend: record.frontend,
      action: record.action,
      close: record.close,
      bytesFromClient: record.bytes_from_client,
      bytesToClient: record.bytes_to_client,
      durationMs: record.duration_ms,
    });
    this.services.audit.write(record);
    if (this.services.recordInLog === false) this.log.debug('flow closed');
    else this.log.info({ record }, 'flow closed');
    this.services.open?.delete(this);
    return record;
  }

  private publishDecision(): void {
    const decision = this.decisionFact;
    if (!decision || this.decisionPublished) return;
    this.decisionPublished = true;
    publish('tollgate:flow:decided', { frontend: this.frontend, action: decision.action, code: decision.code, rule: decision.rule?.id ?? null });
  }
}
