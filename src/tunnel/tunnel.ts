import type { Socket } from 'node:net';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import { type Refusal, refusalReason, TLS_ALERT_ACCESS_DENIED } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import { noteLimitBreach } from '../observability/limit-breach';
import { decide } from '../policy/decide';
import type { CompiledPolicy, Decision } from '../policy/types';
import { type Target, targetText } from '../protocol/target';
import { type Peek, type TlsPeek, classifyFirstBytes } from '../protocol/first-bytes';
import { normaliseHost } from '../protocol/host';
import type { RelayResult } from '../relay/relay';
import type { CleartextTerminal } from '../terminals/cleartext';
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
  /**
   * Dials the origin of a spliced tunnel and relays with it (egress door, then the relay).
   * `originSpoke`, when given, is aborted when the origin sends its first bytes (held, not yet
   * relayed): a server-first protocol.
   */
  readonly dial: (target: Target, client: Socket) => Promise<{ readonly leg: SpliceLeg; readonly address: string; readonly originSpoke?: AbortSignal }>;
  /** Checks, before an inspected tunnel is accepted, that its origin may be reached. */
  readonly check: (target: Target) => Promise<unknown>;
  /**
   * Reads the client's first bytes (tunnel/peek.ts); null timeout = the client's idle timer.
   * An aborted `originSpoke` ends a peek that has no bytes yet with an empty `timeout` peek.
   */
  readonly peek: (client: Socket, initial: Buffer, timeoutMs: number | null, originSpoke?: AbortSignal) => Promise<Peek>;
  readonly inspector: Inspector | null;
  /** Serves cleartext HTTP inside tunnels to inspected destinations; null = refuse it. */
  readonly cleartext?: CleartextTerminal | null;
  /**
   * `limits.server_first_wait`: how long the client of an inspected tunnel may stay silent
   * before the origin is dialled to let it greet first; 0 = never (default when absent).
   */
  readonly serverFirstWaitMs?: number;
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
  flow.log.info({ target: flow.target ? targetText(flow.target) : null, reason: refusalReason(refusal) }, 'tunnel refused');
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
      const dialed = await dialLeg(target, client, deps);
      flow.connected(dialed.address);
      splice = dialed.leg;
    } else {
      await deps.check(target);
    }
  } catch (err) {
    const error = asGatewayError(err, 'connect');
    if (error.code === 'TG_ERR_UPSTREAM_TIMEOUT') noteLimitBreach(flow.log, 'upstream.connect_timeout', flow.frontend, { target: targetText(target), limit_ms: deps.connectTimeoutMs });
    return refuse(flow, replies, { kind: 'error', error });
  }
  if (client.destroyed) {
    splice?.abort('client-closed');
    return 'client-closed';
  }
  replies.accept();
  if (prePeeked) return terminate(flow, client, { peek: prePeeked, splice, serverFirst: false, originSpoke: null }, policy, deps);
  const firstSpeaker = splice ? await peekSpliced(client, initial, splice, originSpokeOf(splice), deps) : await peekInspected(flow, client, initial, deps);
  return terminate(flow, client, firstSpeaker, policy, deps);
}

/** What the peek learned: the client's first bytes, or that the origin spoke first. */
interface FirstSpeaker {
  readonly peek: Peek;
  /** The origin connection, dialled before the reply (splice) or while the client was silent. */
  readonly splice: SpliceLeg | null;
  /** The client sent nothing and the origin greeted: a server-first protocol, not TLS. */
  readonly serverFirst: boolean;
  readonly originSpoke: AbortSignal | null;
}

const originSignals = new WeakMap<SpliceLeg, AbortSignal>();

function originSpokeOf(splice: SpliceLeg): AbortSignal | null {
  return originSignals.get(splice) ?? null;
}

async function dialLeg(target: Target, client: Socket, deps: TunnelDeps): Promise<{ leg: SpliceLeg; address: string }> {
  const dialed = await deps.dial(target, client);
  if (dialed.originSpoke) originSignals.set(dialed.leg, dialed.originSpoke);
  return dialed;
}

/**
 * A spliced tunnel's origin is connected before the reply; nothing is relayed until one side
 * speaks. TLS and HTTP clients speak first; an origin that speaks first (IMAP, SMTP, POP3 and
 * FTP greet) makes the stream a server-first protocol, which is neither TLS nor HTTP.
 */
async function peekSpliced(client: Socket, initial: Buffer, splice: SpliceLeg, originSpoke: AbortSignal | null, deps: TunnelDeps): Promise<FirstSpeaker> {
  // limits.peek_timeout bounds a client that says nothing to an origin that says nothing.
  const peek = await deps.peek(client, initial, deps.peekTimeoutMs, originSpoke ?? undefined);
  return { peek, splice, serverFirst: isServerFirst(peek, originSpoke), originSpoke };
}

function isServerFirst(peek: Peek, originSpoke: AbortSignal | null): boolean {
  return originSpoke?.aborted === true && peek.kind === 'timeout' && peek.bytes.length === 0;
}

/**
 * An inspected tunnel has no origin connection (inspection dials anew). A client silent for
 * limits.server_first_wait may be waiting for a greeting: the origin is dialled then, and if it
 * speaks before the client the stream is server-first. limits.peek_timeout still bounds the
 * whole wait for a client that says nothing and an origin that says nothing.
 */
async function peekInspected(flow: Flow, client: Socket, initial: Buffer, deps: TunnelDeps): Promise<FirstSpeaker> {
  const waitMs = deps.serverFirstWaitMs ?? 0;
  const spoke = new AbortController();
  let settled = false;
  let splice: SpliceLeg | null = null;
  let timer: NodeJS.Timeout | null = null;
  if (waitMs > 0) {
    timer = setTimeout(() => {
      dialLeg(flow.target!, client, deps).then(
        (dialed) => {
          if (settled) {
            dialed.leg.detachUpstream();
            return;
          }
          splice = dialed.leg;
          flow.connected(dialed.address);
          const signal = originSpokeOf(dialed.leg);
          if (signal?.aborted) spoke.abort();
          else signal?.addEventListener('abort', () => spoke.abort(), { once: true });
        },
        (err: unknown) => flow.log.info({ reason: asGatewayError(err, 'connect').message }, 'the origin could not be dialled to let it speak first'),
      );
    }, waitMs);
  }
  const peek = await deps.peek(client, initial, deps.peekTimeoutMs, spoke.signal);
  settled = true;
  if (timer) clearTimeout(timer);
  return { peek, splice, serverFirst: isServerFirst(peek, spoke.signal), originSpoke: spoke.signal };
}

const NON_TLS_DENIED = 'the first bytes are neither TLS nor HTTP, and the rule does not allow that (non_tls: deny, the default)';
const SERVER_FIRST_DENIED = 'the origin spoke first (a protocol that is neither TLS nor HTTP), and the rule does not allow that (non_tls: deny, the default)';

async function terminate(flow: Flow, client: Socket, first: FirstSpeaker, policy: CompiledPolicy, deps: TunnelDeps): Promise<CloseKind> {
  const { peek } = first;
  let splice = first.splice;
  // The decision in force is final once the first bytes are known (a ClientHello may revise it).
  if (peek.kind !== 'tls') flow.decided(flow.decision!, true);
  const refuseAfterPeek = (reason: string, isTls: boolean): CloseKind => {
    splice?.detachUpstream();
    return refuseOpenTunnel(flow, client, reason, isTls);
  };
  /** A stream that is neither TLS nor HTTP: the rule's non_tls says whether it is relayed. */
  const nonTls = async (reason: string): Promise<CloseKind> => {
    const decision = flow.decision!;
    if ((decision.rule?.nonTls ?? 'deny') !== 'splice') {
      flow.decided({ ...decision, action: 'deny', reason }, true);
      return refuseAfterPeek(reason, false);
    }
    if (!splice) {
      try {
        const dialed = await dialLeg(flow.target!, client, deps);
        flow.connected(dialed.address);
        splice = dialed.leg;
      } catch (err) {
        const error = asGatewayError(err, 'connect');
        flow.failed(error);
        return refuseOpenTunnel(flow, client, error.message, false);
      }
    }
    return relay(flow, splice, peek, deps);
  };
  if (first.serverFirst) {
    flow.peeked('none');
    return nonTls(SERVER_FIRST_DENIED);
  }
  switch (peek.kind) {
    case 'closed':
      flow.peeked(peek.bytes.length === 0 ? 'none' : 'other');
      // Bytes that could not begin TLS or HTTP are held to non_tls even when the client is done.
      if (peek.bytes.length > 0 && classifyFirstBytes(peek.bytes) === 'unknown') return nonTls(NON_TLS_DENIED);
      if (splice) return relay(flow, splice, peek, deps);
      client.destroy();
      return 'client-closed';
    case 'timeout':
      flow.peeked('none');
      noteLimitBreach(flow.log, 'limits.peek_timeout', flow.frontend, { limit_ms: deps.peekTimeoutMs });
      flow.failed(new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', `no bytes from the client within ${deps.peekTimeoutMs} ms (limits.peek_timeout)`));
      return refuseAfterPeek(`no bytes from the client within ${deps.peekTimeoutMs} ms`, false);
    case 'invalid-tls':
      flow.peeked('tls');
      return refuseAfterPeek(`invalid TLS ClientHello: ${peek.reason}`, true);
    case 'opaque':
      flow.peeked(peek.firstBytes);
      if (peek.firstBytes === 'other') return nonTls(NON_TLS_DENIED);
      if (flow.decision!.action === 'splice') return relay(flow, splice!, peek, deps);
      if (!deps.cleartext) return refuseAfterPeek('the destination is inspected and cleartext HTTP in tunnels is not served here', false);
      if (splice) {
        splice.detachUpstream();
        flow.connected(null);
      }
      client.unshift(peek.bytes);
      return deps.cleartext.serve(flow, client);
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
  // Origin -> client first: a greeting held while the client was peeked goes out now.
  splice.startDownstream();
  // A client that half-closed while we peeked gets its FIN passed on after the replay.
  splice.startUpstream(peek.bytes, peek.kind === 'closed');
  const result = await splice.result();
  if (result.close === 'timeout') noteLimitBreach(flow.log, 'limits.client_idle_timeout', flow.frontend, { limit_ms: deps.idleTimeoutMs });
  flow.transferred(result.bytesUp, result.bytesDown);
  return result.close;
}
