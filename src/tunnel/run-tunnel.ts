import type { Socket } from 'node:net';
import type { AuditSink } from '../audit/sink';
import type { Egress } from '../egress/egress';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import { type Refusal, refusalReason, TLS_ALERT_ACCESS_DENIED } from '../errors/rejection';
import type { CloseKind, Flow } from '../flow/flow';
import { publish } from '../observability/events';
import { decide } from '../policy/decide';
import type { CompiledPolicy, Decision } from '../policy/types';
import { type Host, normaliseHost } from '../protocol/host';
import { type Peek, peekClientBytes } from './peek';
import { noteLimitBreach } from '../observability/limit-breach';
import { Relay } from '../relay/relay';

/** How a front-end answers in its own protocol. Called at most once each, before any relay. */
export interface TunnelReplies {
  /** The tunnel is open: `200 Connection Established`, a SOCKS success reply, or nothing. */
  accept(): void;
  /** The tunnel is refused before it opened: 403/502/504, a SOCKS error reply, or a close. */
  refuse(refusal: Refusal): void;
}

export type TlsPeek = Extract<Peek, { kind: 'tls' }>;

/** The inspect terminal: terminates the client's TLS and runs the HTTP inside. */
export interface Inspector {
  inspect(flow: Flow, client: Socket, peek: TlsPeek): Promise<CloseKind>;
}

export interface TunnelServices {
  /** The policy in force now; a running flow keeps the decision it got. */
  readonly policy: () => CompiledPolicy;
  readonly egress: Egress;
  readonly audit: AuditSink;
  readonly inspector: Inspector | null;
  readonly peekTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Names pinning detection currently splices instead of inspecting. */
  readonly autoSpliced: () => ReadonlySet<string>;
}

/** Writes the flow's one connection record (audit and operational log). Idempotent. */
export function finishFlow(flow: Flow, close: CloseKind, audit: AuditSink): void {
  if (!flow.markClosed(close)) return;
  if (flow.tunnelOpened) publish('tollgate:tunnel:closed', { frontend: flow.frontend });
  const record = flow.toRecord();
  publish('tollgate:flow:closed', {
    frontend: record.frontend,
    action: record.action,
    close: record.close,
    bytesFromClient: record.bytes_from_client,
    bytesToClient: record.bytes_to_client,
    durationMs: record.duration_ms,
  });
  audit.write(record);
  flow.log.info({ record }, 'flow closed');
}

/** The tunnel's final decision, once it is known (after the peek, or at a refusal before it). */
function publishDecided(flow: Flow, decision: Decision): void {
  publish('tollgate:flow:decided', { frontend: flow.frontend, action: decision.action, code: decision.code });
}

function refuse(flow: Flow, replies: TunnelReplies, refusal: Refusal, services: TunnelServices): void {
  if (refusal.kind === 'error') flow.error = refusal.error;
  if (flow.decision) publishDecided(flow, flow.decision);
  flow.log.info({ target: flow.target, reason: refusalReason(refusal) }, 'tunnel refused');
  replies.refuse(refusal);
  finishFlow(flow, 'refused', services.audit);
}

/** After `200` has been sent, a refusal can only be a TLS alert (for TLS) and a close. */
function refuseOpenTunnel(flow: Flow, client: Socket, reason: string, isTls: boolean, services: TunnelServices): void {
  flow.log.info({ reason }, 'tunnel refused after peek');
  if (isTls && client.writable) client.end(TLS_ALERT_ACCESS_DENIED);
  else client.end();
  client.destroySoon?.();
  setTimeout(() => client.destroy(), 1000).unref();
  finishFlow(flow, 'refused', services.audit);
}

function decideFlow(flow: Flow, sni: Host | null, policy: CompiledPolicy, services: TunnelServices): Decision {
  const target = flow.target!;
  return decide({ target: target.host, port: target.port, sni, frontend: flow.frontend, principal: flow.principal, autoSpliced: services.autoSpliced() }, policy);
}

function decideWithSni(flow: Flow, peek: TlsPeek, policy: CompiledPolicy, services: TunnelServices): Decision | string {
  if (peek.hello.sni === null) return decideFlow(flow, null, policy, services);
  const sni = normaliseHost(peek.hello.sni);
  if (!sni.ok) return `the TLS server name is invalid: ${sni.reason}`;
  return decideFlow(flow, sni.host, policy, services);
}

/**
 * One tunnel, end to end: decide on the target, connect (splice) or check the destination
 * (inspect) so failures can still be answered in the front-end's protocol, accept, peek at
 * the client's first bytes, decide again with the TLS server name, then splice or inspect.
 * `prePeeked` is set by front-ends that must peek before they know the target (transparent TLS).
 */
export async function runTunnel(flow: Flow, client: Socket, initial: Buffer, replies: TunnelReplies, services: TunnelServices, prePeeked?: Peek): Promise<void> {
  const target = flow.target!;
  const policy = services.policy();
  flow.tunnelOpened = true;
  publish('tollgate:tunnel:opened', { frontend: flow.frontend });
  try {
    let decision = decideFlow(flow, null, policy, services);
    if (prePeeked?.kind === 'tls') {
      const withSni = decideWithSni(flow, prePeeked, policy, services);
      if (typeof withSni === 'string') {
        refuse(flow, replies, { kind: 'error', error: new GatewayError('TG_ERR_BAD_TARGET', 'parse', withSni) }, services);
        return;
      }
      decision = withSni;
    }
    flow.decision = decision;
    if (decision.action === 'deny') {
      refuse(flow, replies, { kind: 'deny', decision }, services);
      return;
    }
    if (decision.action === 'inspect' && !services.inspector) {
      throw new GatewayError('TG_ERR_INTERNAL', 'decide', 'inspect decided but interception is not configured');
    }

    let splice: Relay | null = null;
    try {
      if (decision.action === 'splice') {
        const dialed = await services.egress.connect(target, { halfOpen: true });
        flow.upstreamAddress = dialed.remote.address;
        splice = new Relay(client, dialed.socket, services.idleTimeoutMs);
      } else {
        await services.egress.resolveAllowed(target);
      }
    } catch (err) {
      const error = asGatewayError(err, 'connect');
      if (error.code === 'TG_ERR_UPSTREAM_TIMEOUT') noteLimitBreach(flow.log, 'upstream.connect_timeout', flow.frontend, { target: flow.target, ms: services.egress.connectTimeoutMs });
      refuse(flow, replies, { kind: 'error', error }, services);
      return;
    }
    if (client.destroyed) {
      splice?.abort('client-closed');
      finishFlow(flow, 'client-closed', services.audit);
      return;
    }
    replies.accept();

    // With a spliced origin already connected, origin bytes flow at once (protocols where the
    // server speaks first) and the client's own idle timer bounds the wait for its first bytes.
    splice?.startDownstream();
    const peek = prePeeked ?? (await peekClientBytes(client, initial, { timeoutMs: splice ? null : services.peekTimeoutMs }));
    await terminate(flow, client, peek, splice, policy, services);
  } catch (err) {
    flow.error = asGatewayError(err, 'relay');
    flow.log.warn({ err: flow.error }, 'tunnel failed');
    client.destroy();
    finishFlow(flow, 'error', services.audit);
  }
}

async function terminate(flow: Flow, client: Socket, peek: Peek, splice: Relay | null, policy: CompiledPolicy, services: TunnelServices): Promise<void> {
  if (peek.kind !== 'tls') publishDecided(flow, flow.decision!);
  switch (peek.kind) {
    case 'closed':
      flow.firstBytes = peek.bytes.length === 0 ? 'none' : 'other';
      if (splice) break;
      client.destroy();
      finishFlow(flow, 'client-closed', services.audit);
      return;
    case 'timeout':
      flow.firstBytes = 'none';
      noteLimitBreach(flow.log, 'limits.peek_timeout', flow.frontend, { ms: services.peekTimeoutMs });
      splice?.detachUpstream();
      refuseOpenTunnel(flow, client, `no bytes from the client within ${services.peekTimeoutMs} ms`, false, services);
      return;
    case 'invalid-tls':
      flow.firstBytes = 'tls';
      splice?.detachUpstream();
      refuseOpenTunnel(flow, client, `invalid TLS ClientHello: ${peek.reason}`, true, services);
      return;
    case 'opaque':
      flow.firstBytes = peek.firstBytes;
      if (!splice) {
        refuseOpenTunnel(flow, client, 'the destination is inspected, which needs TLS, but the client sent something else', false, services);
        return;
      }
      break;
    case 'tls': {
      flow.firstBytes = 'tls';
      flow.sni = peek.hello.sni;
      flow.alpn = peek.hello.alpn;
      const decision = decideWithSni(flow, peek, policy, services);
      publishDecided(flow, typeof decision === 'string' ? flow.decision! : decision);
      if (typeof decision === 'string') {
        splice?.detachUpstream();
        refuseOpenTunnel(flow, client, decision, true, services);
        return;
      }
      flow.decision = decision;
      if (decision.action === 'deny') {
        splice?.detachUpstream();
        refuseOpenTunnel(flow, client, decision.reason, true, services);
        return;
      }
      if (decision.action === 'inspect') {
        if (splice) {
          if (splice.hasSentDownstream) {
            splice.detachUpstream();
            refuseOpenTunnel(flow, client, 'the origin spoke before the client; cannot switch to inspection', true, services);
            return;
          }
          splice.detachUpstream();
          flow.upstreamAddress = null;
        }
        client.unshift(peek.bytes);
        const close = await services.inspector!.inspect(flow, client, peek);
        finishFlow(flow, close, services.audit);
        return;
      }
      break;
    }
  }
  if (!splice) throw new GatewayError('TG_ERR_INTERNAL', 'relay', 'splice decided without an origin connection');
  // A client that half-closed while we peeked gets its FIN passed on after the replay.
  splice.startUpstream(peek.bytes, peek.kind === 'closed');
  const result = await splice.result();
  if (result.close === 'timeout') noteLimitBreach(flow.log, 'limits.client_idle_timeout', flow.frontend, { ms: services.idleTimeoutMs });
  flow.bytesFromClient = result.bytesUp;
  flow.bytesToClient = result.bytesDown;
  finishFlow(flow, result.close, services.audit);
}
