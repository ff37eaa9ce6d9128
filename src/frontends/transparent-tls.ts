import net, { type Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { TLS_ALERT_ACCESS_DENIED, writeTlsRefusal } from '../errors/refusal';
import { type CloseKind, Flow, type FlowServices } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import { normaliseHost } from '../protocol/host';
import { runTunnel, type TunnelDeps } from '../tunnel/tunnel';

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
export function createTransparentTlsServer(options: TransparentTlsOptions, tunnels: TunnelDeps, flows: FlowServices): net.Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  server.on('connection', (socket: Socket) => {
    const flow = new Flow('transparent-tls', socket, flows);
    socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
    void runFlow(flow, () =>
      handleConnection(flow, socket, options, tunnels).catch((err: unknown) => {
        socket.destroy();
        throw err;
      }),
    );
  });
  return server;
}

function closeRefused(flow: Flow, socket: Socket, reason: string, alert: boolean): CloseKind {
  flow.log.info({ reason }, 'transparent TLS connection refused');
  if (socket.writable) {
    if (alert) socket.end(TLS_ALERT_ACCESS_DENIED);
    else socket.end();
  }
  setTimeout(() => socket.destroy(), 1000).unref();
  return 'refused';
}

/** A deny that no rule made: the flow has no name to decide by. Recorded like any decision. */
function refuseNameless(flow: Flow, socket: Socket, reason: string, alert: boolean, tunnels: TunnelDeps): CloseKind {
  flow.decided({ action: 'deny', code: 'sni', rule: null, pattern: null, reason, policyVersion: tunnels.policy().version }, true);
  return closeRefused(flow, socket, reason, alert);
}

async function handleConnection(flow: Flow, socket: Socket, options: TransparentTlsOptions, tunnels: TunnelDeps): Promise<CloseKind> {
  const peek = await tunnels.peek(socket, Buffer.alloc(0), options.peekTimeoutMs);
  const fail = (error: GatewayError, alert: boolean): CloseKind => {
    flow.failed(error);
    return closeRefused(flow, socket, error.message, alert);
  };
  switch (peek.kind) {
    case 'closed':
      flow.peeked(peek.bytes.length === 0 ? 'none' : 'other');
      socket.destroy();
      return 'client-closed';
    case 'timeout':
      flow.peeked('none');
      return fail(new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', `no ClientHello within ${options.peekTimeoutMs} ms`), false);
    case 'opaque':
      // Plain HTTP redirected to the TLS port, or anything else: nothing names a destination.
      flow.peeked(peek.firstBytes);
      return refuseNameless(flow, socket, 'the client did not start with a TLS ClientHello, so there is no server name to decide by (transparent.no_sni: deny)', false, tunnels);
    case 'invalid-tls':
      flow.peeked('tls');
      return fail(new GatewayError('TG_ERR_BAD_REQUEST', 'parse', `invalid TLS ClientHello: ${peek.reason}`), true);
    case 'tls':
      break;
  }
  flow.peeked('tls', peek.hello);
  if (peek.hello.sni === null) {
    return refuseNameless(flow, socket, 'the ClientHello carries no server name (SNI), so there is no destination to decide by (transparent.no_sni: deny)', true, tunnels);
  }
  const sni = normaliseHost(peek.hello.sni);
  if (!sni.ok) return fail(new GatewayError('TG_ERR_BAD_TARGET', 'parse', `the TLS server name is invalid: ${sni.reason}`), true);
  flow.learnedTarget({ host: sni.host, port: options.originPort });
  return runTunnel(
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
