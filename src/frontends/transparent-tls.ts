import net, { type Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { TLS_ALERT_ACCESS_DENIED, writeTlsRefusal } from '../errors/rejection';
import { Flow } from '../flow/flow';
import type { Logger } from '../logging/logger';
import { publish } from '../observability/events';
import type { Decision } from '../policy/types';
import { normaliseHost } from '../protocol/host';
import { finishFlow, runTunnel, type TunnelServices } from '../tunnel/run-tunnel';
import { peekClientBytes } from '../tunnel/peek';

export interface TransparentTlsOptions {
  /** `transparent.tls_origin_port`: the port dialled on the address the SNI resolves to. */
  readonly originPort: number;
  /** `limits.peek_timeout`: time the client has to send its ClientHello. */
  readonly peekTimeoutMs: number;
  /** `transparent.no_sni`: what happens to a ClientHello without a server name. */
  readonly noSni: 'deny';
}

/**
 * The transparent TLS front-end, for connections a router redirected from port 443: the
 * client believes it talks to the origin, so the target comes from the ClientHello's server
 * name (SNI). The name is resolved by the gateway's own resolver (never trusting the address
 * the client had dialled, which the gateway cannot see behind REDIRECT anyway) and the flow
 * continues in the same tunnel pipeline as a CONNECT whose first bytes are already peeked.
 *
 * With Encrypted Client Hello the SNI read here is the outer, public name: that is the name
 * decided on.
 */
export function createTransparentTlsServer(options: TransparentTlsOptions, tunnels: TunnelServices, logger: Logger): net.Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  server.on('connection', (socket: Socket) => {
    const flow = new Flow('transparent-tls', socket, logger);
    socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
    void handleConnection(flow, socket, options, tunnels).catch((err: unknown) => {
      flow.log.warn({ err }, 'transparent TLS connection failed');
      socket.destroy();
      finishFlow(flow, 'error', tunnels.audit);
    });
  });
  return server;
}

function closeRefused(flow: Flow, socket: Socket, reason: string, alert: boolean, tunnels: TunnelServices): void {
  flow.log.info({ reason }, 'transparent TLS connection refused');
  if (flow.decision) publish('tollgate:flow:decided', { frontend: flow.frontend, action: flow.decision.action, code: flow.decision.code });
  if (socket.writable) {
    if (alert) socket.end(TLS_ALERT_ACCESS_DENIED);
    else socket.end();
  }
  setTimeout(() => socket.destroy(), 1000).unref();
  finishFlow(flow, 'refused', tunnels.audit);
}

/** A deny that no rule made: the flow has no name to decide by. Recorded like any decision. */
function noNameDecision(reason: string, tunnels: TunnelServices): Decision {
  return { action: 'deny', code: 'sni', rule: null, pattern: null, reason, policyVersion: tunnels.policy().version };
}

async function handleConnection(flow: Flow, socket: Socket, options: TransparentTlsOptions, tunnels: TunnelServices): Promise<void> {
  const peek = await peekClientBytes(socket, Buffer.alloc(0), { timeoutMs: options.peekTimeoutMs });
  switch (peek.kind) {
    case 'closed':
      flow.firstBytes = peek.bytes.length === 0 ? 'none' : 'other';
      socket.destroy();
      finishFlow(flow, 'client-closed', tunnels.audit);
      return;
    case 'timeout':
      flow.firstBytes = 'none';
      flow.error = new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', `no ClientHello within ${options.peekTimeoutMs} ms`);
      closeRefused(flow, socket, flow.error.message, false, tunnels);
      return;
    case 'opaque':
      // Plain HTTP redirected to the TLS port, or anything else: nothing names a destination.
      flow.firstBytes = peek.firstBytes;
      flow.decision = noNameDecision('the client did not start with a TLS ClientHello, so there is no server name to decide by (transparent.no_sni: deny)', tunnels);
      closeRefused(flow, socket, flow.decision.reason, false, tunnels);
      return;
    case 'invalid-tls':
      flow.firstBytes = 'tls';
      flow.error = new GatewayError('TG_ERR_BAD_REQUEST', 'parse', `invalid TLS ClientHello: ${peek.reason}`);
      closeRefused(flow, socket, flow.error.message, true, tunnels);
      return;
    case 'tls':
      break;
  }
  flow.firstBytes = 'tls';
  flow.sni = peek.hello.sni;
  flow.alpn = peek.hello.alpn;
  if (peek.hello.sni === null) {
    flow.decision = noNameDecision('the ClientHello carries no server name (SNI), so there is no destination to decide by (transparent.no_sni: deny)', tunnels);
    closeRefused(flow, socket, flow.decision.reason, true, tunnels);
    return;
  }
  const sni = normaliseHost(peek.hello.sni);
  if (!sni.ok) {
    flow.error = new GatewayError('TG_ERR_BAD_TARGET', 'parse', `the TLS server name is invalid: ${sni.reason}`);
    closeRefused(flow, socket, flow.error.message, true, tunnels);
    return;
  }
  flow.target = { host: sni.host, port: options.originPort };
  await runTunnel(
    flow,
    socket,
    Buffer.alloc(0),
    {
      // The client is mid-handshake with "the origin": success is simply carrying on.
      accept: () => undefined,
      refuse: (refusal) => writeTlsRefusal(socket, refusal),
    },
    tunnels,
    peek,
  );
}
