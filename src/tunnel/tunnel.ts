import type { Socket } from 'node:net';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import { type Refusal, refusalReason, TLS_ALERT_ACCESS_DENIED } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import { noteLimitBreach } from '../observability/limit-breach';
import { decide } from '../policy/decide';
import type { CompiledPolicy, Decision } from '../policy/types';
import type { Target } from '../protocol/target';
import type { Peek, TlsPeek } from '../protocol/first-bytes';
import { normaliseHost } from '../protocol/host';
import type { RelayResult } from '../relay/relay';
import type { Inspector } from '../terminals/inspect';

/** How a front-end answers in its own protocol. Called at most once each, before any relay. */
export interface TunnelReplies {
  /** The tunnel is open: `200 Connection Established`, a SOCKS success reply, or nothing. */
  accept(): void;
  /** The tunnel is refused before it opened: 403/502/504, a SOCKS error reply, or a close. */
  refuse(refusal: Refusal): void;
}

/** A spliced origin connection, relaying as soon as it is dialled (relay/relay.ts). */
export interface SpliceLeg {
  /** Origin -> client, before the client's first bytes are read (server-speaks-first protocols). */
  startDownstream(): void;
  /** Client -> origin, replaying the peeked bytes; a client that already ended is half-closed. */
  startUpstream(replay: Buffer, clientEnded: boolean): void;
  /** Lets the origin side go without touching the client (the flow goes elsewhere). */
  detachUpstream(): void;
  /** Tears both sides down. */
  abort(kind: CloseKind): void;
  readonly hasSentDownstream: boolean;
  result(): Promise<RelayResult>;
}

/**
 * What the tunnel needs from the rest of the gateway, injected so the state machine runs the
 * same with the egress door and real sockets (gateway.ts) as with fakes (tunnel.test.ts).
 */
export interface TunnelDeps {
  /** The policy in force now; a running flow keeps the decision it got. */
  readonly policy: () => CompiledPolicy;
  /** Names pinning detection currently splices instead of inspecting. */
  readonly autoSpliced: () => ReadonlySet<string>;
  /** Dials the origin of a spliced tunnel and relays with it (egress door, then the relay). */
  readonly dial: (target: Target, client: Socket) => Promise<{ readonly leg: SpliceLeg; readonly address: string }>;
  /** Checks, before an inspected tunnel is accepted, that its origin may be reached. */
  readonly check: (target: Target) => Promise<unknown>;
  /** Reads the client's first bytes (tunnel/peek.ts); null timeout = the client's idle timer. */
  readonly peek: (client: Socket, initial: Buffer, timeoutMs: number | null) => Promise<Peek>;
  readonly inspector: Inspector | null;
  readonly peekTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

function decideFlow(flow: Flow, sni: TlsPeek | null, policy: CompiledPolicy, deps: TunnelDeps): Decision | string {
  const target = flow.target!;
  let sniHost = null;
  if (sni?.hello.sni != null) {
    const parsed = normaliseHost(sni.hello.sni);
    if (!parsed.ok) return `the TLS server name is invalid: ${parsed.reason}`;
    sniHost = parsed.host;
  }
  return decide({ target: target.host, port: target.port, sni: sniHost, frontend: flow.frontend, principal: flow.principal, autoSpliced: deps.autoSpliced() }, policy);
}

function refuse(flow: Flow, replies: TunnelReplies, refusal: Refusal): CloseKind {
  if (refusal.kind === 'error') flow.failed(refusal.error);
  flow.log.info({ target: flow.target, reason: refusalReason(refusal) }, 'tunnel refused');
  replies.refuse(refusal);
  return 'refused';
}

/** After the tunnel was accepted, a refusal can only be a TLS alert (for TLS) and a close. */
function refuseOpenTunnel(flow: Flow, client: Socket, reason: string, isTls: boolean): CloseKind {
  flow.log.info({ reason }, 'tunnel refused after peek');
  if (isTls && client.writable) client.end(TLS_ALERT_ACCESS_DENIED);
  else client.end();
  client.destroySoon?.();
  setTimeout(() => client.destroy(), 1000).unref();
  return 'refused';
}

/**
 * One tunnel, from its target to its end: decide on the target; dial the origin (splice) or
 * check it may be reached (inspect) so failures can still be answered in the front-end's
 * protocol; accept; peek at the client's first bytes; decide again with the TLS server name;
 * then splice or inspect. `prePeeked` is set by front-ends that peek before they know the
 * target (transparent TLS). Resolves with how the tunnel ended; the flow's owner closes it.
 */
export async function runTunnel(flow: Flow, client: Socket, initial: Buffer, replies: TunnelReplies, deps: TunnelDeps, prePeeked?: Peek): Promise<CloseKind> {
  const target = flow.target!;
  const policy = deps.policy();
  flow.openedTunnel();
  const first = decideFlow(flow, prePeeked?.kind === 'tls' ? prePeeked : null, policy, deps);
  if (typeof first === 'string') return refuse(flow, replies, { kind: 'error', error: new GatewayError('TG_ERR_BAD_TARGET', 'parse', first) });
  flow.decided(first, false);
  if (first.action === 'deny') return refuse(flow, replies, { kind: 'deny', decision: first });
  if (first.action === 'inspect' && !deps.inspector) throw new GatewayError('TG_ERR_INTERNAL', 'decide', 'inspect decided but interception is not configured');

  let splice: SpliceLeg | null = null;
  try {
    if (first.action === 'splice') {
      const dialed = await deps.dial(target, client);
      flow.connected(dialed.address);
      splice = dialed.leg;
    } else {
      await deps.check(target);
    }
  } catch (err) {
    const error = asGatewayError(err, 'connect');
    if (error.code === 'TG_ERR_UPSTREAM_TIMEOUT') noteLimitBreach(flow.log, 'upstream.connect_timeout', flow.frontend, { target, ms: deps.connectTimeoutMs });
    return refuse(flow, replies, { kind: 'error', error });
  }
  if (client.destroyed) {
    splice?.abort('client-closed');
    return 'client-closed';
  }
  replies.accept();
  // With a spliced origin already connected, origin bytes flow at once (protocols where the
  // server speaks first) and the client's own idle timer bounds the wait for its first bytes.
  splice?.startDownstream();
  const peek = prePeeked ?? (await deps.peek(client, initial, splice ? null : deps.peekTimeoutMs));
  return terminate(flow, client, peek, splice, policy, deps);
}

async function terminate(flow: Flow, client: Socket, peek: Peek, splice: SpliceLeg | null, policy: CompiledPolicy, deps: TunnelDeps): Promise<CloseKind> {
  // The decision in force is final once the first bytes are known (a ClientHello may revise it).
  if (peek.kind !== 'tls') flow.decided(flow.decision!, true);
  const refuseAfterPeek = (reason: string, isTls: boolean): CloseKind => {
    splice?.detachUpstream();
    return refuseOpenTunnel(flow, client, reason, isTls);
  };
  switch (peek.kind) {
    case 'closed':
      flow.peeked(peek.bytes.length === 0 ? 'none' : 'other');
      if (splice) return relay(flow, splice, peek, deps);
      client.destroy();
      return 'client-closed';
    case 'timeout':
      flow.peeked('none');
      noteLimitBreach(flow.log, 'limits.peek_timeout', flow.frontend, { ms: deps.peekTimeoutMs });
      return refuseAfterPeek(`no bytes from the client within ${deps.peekTimeoutMs} ms`, false);
    case 'invalid-tls':
      flow.peeked('tls');
      return refuseAfterPeek(`invalid TLS ClientHello: ${peek.reason}`, true);
    case 'opaque':
      flow.peeked(peek.firstBytes);
      if (!splice) return refuseAfterPeek('the destination is inspected, which needs TLS, but the client sent something else', false);
      return relay(flow, splice, peek, deps);
    case 'tls':
      break;
  }
  flow.peeked('tls', peek.hello);
  const decision = decideFlow(flow, peek, policy, deps);
  if (typeof decision === 'string') {
    flow.decided(flow.decision!, true);
    return refuseAfterPeek(decision, true);
  }
  flow.decided(decision, true);
  if (decision.action === 'deny') return refuseAfterPeek(decision.reason, true);
  if (decision.action === 'splice') {
    if (!splice) throw new GatewayError('TG_ERR_INTERNAL', 'relay', 'splice decided without an origin connection');
    return relay(flow, splice, peek, deps);
  }
  if (splice) {
    if (splice.hasSentDownstream) return refuseAfterPeek('the origin spoke before the client; cannot switch to inspection', true);
    splice.detachUpstream();
    flow.connected(null);
  }
  client.unshift(peek.bytes);
  return deps.inspector!.inspect(flow, client, peek);
}

/** The splice terminal: replay what was peeked, relay until both sides are done. */
async function relay(flow: Flow, splice: SpliceLeg, peek: Peek, deps: TunnelDeps): Promise<CloseKind> {
  // A client that half-closed while we peeked gets its FIN passed on after the replay.
  splice.startUpstream(peek.bytes, peek.kind === 'closed');
  const result = await splice.result();
  if (result.close === 'timeout') noteLimitBreach(flow.log, 'limits.client_idle_timeout', flow.frontend, { ms: deps.idleTimeoutMs });
  flow.transferred(result.bytesUp, result.bytesDown);
  return result.close;
}
