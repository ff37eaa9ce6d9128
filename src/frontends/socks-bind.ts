import net, { type Socket } from 'node:net';
import type { ResolvedAddress } from '../egress/resolve';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import { writeSocksRefusal } from '../errors/refusal';
import type { CloseKind, Flow } from '../flow/flow';
import { publish } from '../observability/events';
import { decide } from '../policy/decide';
import type { CompiledPolicy, Decision } from '../policy/types';
import { addressText, bracketedAddress } from '../protocol/address-text';
import { hostText } from '../protocol/host';
import { SOCKS5_REPLY } from '../protocol/socks-wire';
import { encodeSocks5Reply } from '../protocol/socks5-codec';
import type { Target } from '../protocol/target';
import { Relay } from '../relay/relay';

/** What BIND needs from the gateway (gateway.ts wires it). */
export interface SocksBindOptions {
  readonly policy: () => CompiledPolicy;
  /** Resolution and destination guard (the egress door): who may connect back. */
  readonly resolveAllowed: (target: Target) => Promise<readonly ResolvedAddress[]>;
  /** `limits.socks_bind_timeout`: how long the bound port waits for its one connection. */
  readonly timeoutMs: number;
  /** `limits.client_idle_timeout`, for the relay once connected. */
  readonly idleTimeoutMs: number;
}

/** How a BIND's wait ended: the label of `tollgate_socks_bind_total`. */
export type BindResult = 'connected' | 'timeout' | 'refused' | 'wrong-peer' | 'client-closed';

/**
 * SOCKS5 BIND (RFC 1928 section 4), for protocols where the server connects back to the client
 * (FTP active mode). Off unless the destination's rule says `socks_bind: true`.
 *
 * The accepted peer must be an address the BIND's own DST.ADDR resolves to (through the
 * gateway's resolver and the destination guard, as a CONNECT to it would): BIND carries the
 * primary connection's destination, and deciding from the request itself keeps BIND from
 * depending on which of a client's connections came first. Its port is not checked (an FTP
 * server connects from port 20, not from the primary connection's port). Connections from any
 * other address are closed at once and the wait goes on; the first from an expected address is
 * the one connection, and the port closes. The bound address is the gateway's: the address the
 * client reached the SOCKS listener on, with an ephemeral port.
 *
 * Replies (RFC 1928 section 6): the first when the port is bound (BND = that port), the second
 * when the peer connected (BND = the peer's address and port) or, on timeout, TTL expired (0x06).
 */
export async function runSocksBind(flow: Flow, client: Socket, target: Target, initial: Buffer, options: SocksBindOptions): Promise<CloseKind> {
  flow.openedTunnel();
  const decision = bindDecision(flow, target, options.policy());
  flow.decided(decision, true);
  if (decision.action === 'deny') {
    flow.log.info({ target, rule: decision.rule?.id ?? null, reason: decision.reason }, 'SOCKS5 BIND refused');
    publish('tollgate:socks:bind', { result: 'refused' });
    writeSocksRefusal(client, 5, { kind: 'deny', decision });
    return 'refused';
  }
  let expected: ReadonlySet<string>;
  try {
    expected = new Set((await options.resolveAllowed(target)).map((a) => a.address));
  } catch (err) {
    const error = asGatewayError(err, 'resolve');
    flow.failed(error);
    flow.log.info({ target, code: error.code, reason: error.message }, 'SOCKS5 BIND refused');
    publish('tollgate:socks:bind', { result: 'refused' });
    writeSocksRefusal(client, 5, { kind: 'error', error });
    return 'refused';
  }
  if (client.destroyed) return 'client-closed';
  return new BindWait(flow, client, initial, expected, options).run();
}

/** The destination's decision, turned into a deny when its rule does not allow BIND. */
function bindDecision(flow: Flow, target: Target, policy: CompiledPolicy): Decision {
  const decision = decide({ target: target.host, port: target.port, sni: null, frontend: 'socks', principal: flow.principal }, policy);
  if (decision.action === 'deny' || decision.rule?.socksBind === true) return decision;
  const by = decision.rule ? `rule ${decision.rule.id}` : 'default_action (no rule matches)';
  return { ...decision, action: 'deny', reason: `SOCKS5 BIND to ${hostText(target.host)} is off: ${by} does not say socks_bind: true` };
}

class BindWait {
  private readonly server = net.createServer({ allowHalfOpen: true, noDelay: true });
  private timer: NodeJS.Timeout | null = null;
  private settled = false;
  private resolveRun!: (kind: CloseKind) => void;
  private readonly onClientGone = (): void => this.finish('client-closed', 'client-closed');

  constructor(
    private readonly flow: Flow,
    private readonly client: Socket,
    private readonly initial: Buffer,
    private readonly expected: ReadonlySet<string>,
    private readonly options: SocksBindOptions,
  ) {}

  run(): Promise<CloseKind> {
    return new Promise((resolve) => {
      this.resolveRun = resolve;
      this.server.on('error', (err) => this.fail(err));
      this.server.on('connection', (peer: Socket) => this.onConnection(peer));
      this.client.once('close', this.onClientGone);
      this.client.once('end', this.onClientGone);
      this.server.listen({ host: addressText(this.client.localAddress ?? '127.0.0.1'), port: 0, exclusive: true }, () => {
        const bound = this.server.address() as net.AddressInfo;
        this.flow.log.info({ bound: `${bracketedAddress(bound.address)}:${bound.port}`, expected_peers: [...this.expected] }, 'SOCKS5 BIND waiting for the connection back');
        this.client.write(encodeSocks5Reply(SOCKS5_REPLY.succeeded, { kind: bound.family === 'IPv6' ? 'ipv6' : 'ipv4', address: bound.address, port: bound.port }));
        this.timer = setTimeout(() => this.onTimeout(), this.options.timeoutMs);
        this.timer.unref();
      });
    });
  }

  private onConnection(peer: Socket): void {
    peer.on('error', () => undefined);
    const address = addressText(peer.remoteAddress ?? '');
    if (this.settled) {
      peer.destroy();
      return;
    }
    if (!this.expected.has(address)) {
      this.flow.log.info({ peer: `${bracketedAddress(address)}:${peer.remotePort}`, expected_peers: [...this.expected] }, 'SOCKS5 BIND turned away a connection from an unexpected address');
      publish('tollgate:socks:bind', { result: 'wrong-peer' });
      peer.destroy();
      return;
    }
    this.settled = true;
    this.stopWaiting();
    publish('tollgate:socks:bind', { result: 'connected' });
    this.flow.connected(address);
    this.flow.log.info({ peer: `${bracketedAddress(address)}:${peer.remotePort}` }, 'SOCKS5 BIND connected');
    // From here the relay follows the client's FIN and close.
    this.client.removeListener('end', this.onClientGone);
    this.client.removeListener('close', this.onClientGone);
    this.client.write(encodeSocks5Reply(SOCKS5_REPLY.succeeded, { kind: address.includes(':') ? 'ipv6' : 'ipv4', address, port: peer.remotePort ?? 0 }));
    const relay = new Relay(this.client, peer, this.options.idleTimeoutMs);
    relay.startUpstream(this.initial);
    void relay.result().then((result) => {
      this.flow.transferred(result.bytesUp, result.bytesDown);
      this.resolveRun(result.close);
    });
  }

  private onTimeout(): void {
    if (this.settled) return;
    this.flow.log.info({ limit: 'limits.socks_bind_timeout', frontend: 'socks', ms: this.options.timeoutMs }, 'limit reached: limits.socks_bind_timeout');
    publish('tollgate:limit:breached', { limit: 'socks_bind_timeout', frontend: 'socks' });
    // The second reply (RFC 1928 section 6) is the failure: TTL expired, via the one error mapping.
    const error = new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `nobody connected back to the BIND port within ${this.options.timeoutMs} ms`);
    this.flow.failed(error);
    if (this.client.writable) writeSocksRefusal(this.client, 5, { kind: 'error', error });
    setTimeout(() => this.client.destroy(), 1000).unref();
    this.finish('timeout', 'timeout');
  }

  private fail(err: Error): void {
    const error = asGatewayError(err, 'connect');
    this.flow.failed(error);
    if (this.client.writable) writeSocksRefusal(this.client, 5, { kind: 'error', error });
    this.finish('error', 'refused');
  }

  private finish(kind: CloseKind, result: BindResult): void {
    if (this.settled) return;
    this.settled = true;
    this.stopWaiting();
    publish('tollgate:socks:bind', { result });
    if (kind === 'client-closed') this.client.destroy();
    this.resolveRun(kind);
  }

  private stopWaiting(): void {
    if (this.timer) clearTimeout(this.timer);
    this.server.close();
  }
}
