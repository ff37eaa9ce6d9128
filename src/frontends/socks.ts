import net, { type Socket } from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { type Refusal, writeSocks5AuthRefusal, writeSocksRefusal } from '../errors/refusal';
import { type CloseKind, Flow, type FlowServices } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import type { Authenticator } from '../identity/principal';
import { publish } from '../observability/events';
import { noteLimitBreach } from '../observability/limit-breach';
import type { Target } from '../protocol/target';
import { normaliseHost } from '../protocol/host';
import { SOCKS4_REPLY, SOCKS5_METHOD, SOCKS5_REPLY, type SocksInvalid, type SocksTarget, detectSocksVersion } from '../protocol/socks-wire';
import { encodeSocks4Reply, parseSocks4Request } from '../protocol/socks4-codec';
import { encodeSocks5AuthStatus, encodeSocks5MethodSelection, encodeSocks5Reply, parseSocks5Greeting, parseSocks5Request, parseSocks5UserPass } from '../protocol/socks5-codec';
import { runTunnel, type TunnelDeps } from '../tunnel/tunnel';
import { HandshakeReader } from './handshake-reader';
import { runSocksBind, type SocksBindOptions } from './socks-bind';
import { UdpAssociation, type SocksUdpOptions } from './socks-udp';

export interface SocksFrontendOptions {
  /** `limits.socks_handshake_timeout`: from accept to a complete request. */
  readonly handshakeTimeoutMs: number;
  /** Verifies RFC 1929 credentials; when `required`, SOCKS5 must authenticate and SOCKS4 is refused. */
  readonly authenticator: Authenticator | null;
  /** SOCKS5 UDP ASSOCIATE; absent: answered "command not supported". */
  readonly udp?: SocksUdpOptions;
  /** SOCKS5 BIND (still only where a rule says `socks_bind: true`); absent: "command not supported". */
  readonly bind?: SocksBindOptions;
}

/** Where the handshake is, so a timeout can be answered in the right message. */
type Phase = 'version' | 'greeting' | 'auth' | 'request' | 'done';

/** What the SOCKS front-end learned: a CONNECT for the tunnel pipeline, a BIND, or a UDP ASSOCIATE. */
type SocksRequest =
  | { readonly command: 'connect'; readonly version: 4 | 5; readonly target: Target }
  | { readonly command: 'bind'; readonly version: 5; readonly target: Target }
  /** `declaredPort`: the DST.PORT of the request, where the client's datagrams will come from (0: not yet known). */
  | { readonly command: 'udp-associate'; readonly version: 5; readonly declaredPort: number };

/**
 * The SOCKS front-end: SOCKS4, SOCKS4a and SOCKS5 (RFC 1928) CONNECT, with RFC 1929
 * username/password when an authenticator is configured. The handshake only learns the target
 * (and the user); the tunnel then goes through the same pipeline as an HTTP CONNECT: decide,
 * connect, reply, peek at the first bytes, splice or inspect. SOCKS5 BIND (socks-bind.ts) and
 * UDP ASSOCIATE (socks-udp.ts) are decided by the same policy once the handshake is done.
 */
export function createSocksServer(options: SocksFrontendOptions, tunnels: TunnelDeps, flows: FlowServices): net.Server {
  // allowHalfOpen: a client's FIN must travel through a splice as a FIN, as for CONNECT.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  server.on('connection', (socket: Socket) => {
    const flow = new Flow('socks', socket, flows);
    // Attached at once so no socket error can go unhandled between stages.
    socket.on('error', (err: NodeJS.ErrnoException) => flow.log.debug({ code: err.code }, 'client socket error'));
    void runFlow(flow, () => new SocksHandshake(flow, socket, options, tunnels).run());
  });
  return server;
}

/** An unknown SOCKS5 ATYP has its own reply (0x08); other unparsable requests are general failures. */
function errorForInvalid(invalid: SocksInvalid): GatewayError {
  if (invalid.code === 'address-type') return new GatewayError('TG_ERR_BAD_TARGET', 'parse', invalid.reason);
  return new GatewayError('TG_ERR_BAD_REQUEST', 'parse', invalid.reason);
}

function targetOf(requested: SocksTarget): Target | string {
  const host = normaliseHost(requested.kind === 'domain' ? requested.name : requested.address);
  if (!host.ok) return host.reason;
  return { host: host.host, port: requested.port };
}

class SocksHandshake {
  private phase: Phase = 'version';
  private version: 4 | 5 | null = null;
  private timedOut = false;
  /** How the handshake ended when it did not reach a tunnel. */
  private ended: CloseKind | null = null;
  private readonly reader: HandshakeReader;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly flow: Flow,
    private readonly socket: Socket,
    private readonly options: SocksFrontendOptions,
    private readonly tunnels: TunnelDeps,
  ) {
    this.reader = new HandshakeReader(socket);
    this.timer = setTimeout(() => this.onTimeout(), options.handshakeTimeoutMs);
    this.timer.unref();
  }

  /** The handshake, then the tunnel; resolves with how the flow ended. */
  async run(): Promise<CloseKind> {
    try {
      const request = await this.negotiate();
      clearTimeout(this.timer);
      if (!request) return this.ended ?? 'refused';
      this.phase = 'done';
      if (request.command === 'udp-associate') {
        this.reader.detach();
        return await this.associate(request.declaredPort, this.options.udp!);
      }
      this.flow.learnedTarget(request.target);
      const initial = this.reader.detach();
      if (request.command === 'bind') return await runSocksBind(this.flow, this.socket, request.target, initial, this.options.bind!);
      const version = request.version;
      return await runTunnel(
        this.flow,
        this.socket,
        initial,
        {
          // BND.ADDR/BND.PORT (RFC 1928 section 6) report 0.0.0.0:0: CONNECT clients ignore
          // them, an inspected flow has no origin socket yet when the reply is due (it connects
          // after the client's ClientHello), and the gateway's own egress address is not
          // something to tell clients.
          accept: () => this.socket.write(version === 5 ? encodeSocks5Reply(SOCKS5_REPLY.succeeded) : encodeSocks4Reply(SOCKS4_REPLY.granted)),
          refuse: (refusal) => writeSocksRefusal(this.socket, version, refusal),
        },
        this.tunnels,
      );
    } catch (err) {
      clearTimeout(this.timer);
      this.socket.destroy();
      throw err;
    }
  }

  /** Runs the handshake up to a request it can hand on; null when it has already refused or the client left. */
  private async negotiate(): Promise<SocksRequest | null> {
    const version = await this.reader.read<4 | 5>((input) => {
      const detected = detectSocksVersion(input);
      if (detected === 'needMore') return { kind: 'needMore' };
      if (detected === 'invalid') return { kind: 'invalid', code: 'malformed', reason: `unknown SOCKS version byte 0x${input[0]!.toString(16).padStart(2, '0')}` };
      return { kind: 'parsed', value: detected, consumed: 0 };
    });
    if (version.kind !== 'parsed') {
      // Not SOCKS at all: there is no reply a client of an unknown protocol would understand.
      if (version.kind === 'invalid') this.refuseSilently(errorForInvalid(version));
      else this.clientLeft();
      return null;
    }
    this.version = version.value;
    return version.value === 4 ? this.negotiate4() : this.negotiate5();
  }

  private async negotiate4(): Promise<SocksRequest | null> {
    this.phase = 'request';
    const read = await this.reader.read((input) => parseSocks4Request(input));
    if (read.kind === 'closed') return this.clientLeft();
    if (read.kind === 'invalid') return this.refuse(errorForInvalid(read));
    const request = read.value;
    if (request.command !== 'connect') {
      return this.refuse(new GatewayError('TG_ERR_UNSUPPORTED', 'parse', `SOCKS4 command ${this.commandName(request.command)} is not supported (only CONNECT)`));
    }
    if (this.options.authenticator?.required) {
      // SOCKS4 carries no password; with users configured it cannot be allowed at all.
      this.publishAuthFailure('socks4-without-password');
      return this.refuse(new GatewayError('TG_ERR_AUTH_REQUIRED', 'auth', 'SOCKS4 cannot authenticate and users are configured; use SOCKS5 with a user name and password'));
    }
    const target = targetOf(request.target);
    if (typeof target === 'string') return this.refuse(new GatewayError('TG_ERR_BAD_TARGET', 'parse', target));
    return { command: 'connect', version: 4, target };
  }

  private async negotiate5(): Promise<SocksRequest | null> {
    this.phase = 'greeting';
    const greeting = await this.reader.read(parseSocks5Greeting);
    if (greeting.kind === 'closed') return this.clientLeft();
    if (greeting.kind === 'invalid') return this.refuseSilently(errorForInvalid(greeting));
    const method = this.chooseMethod(greeting.value.methods);
    if (method === SOCKS5_METHOD.noAcceptableMethods) {
      this.publishAuthFailure('no-acceptable-method');
      writeSocks5AuthRefusal(this.socket, 'method');
      const reason = this.options.authenticator?.required
        ? 'username/password authentication is required and the client did not offer it'
        : 'the client offered no method the gateway supports (no authentication, username/password)';
      return this.refuseSilently(new GatewayError('TG_ERR_AUTH_REQUIRED', 'auth', reason), false);
    }
    this.socket.write(encodeSocks5MethodSelection(method));
    if (method === SOCKS5_METHOD.usernamePassword && !(await this.authenticate())) return null;

    this.phase = 'request';
    const read = await this.reader.read(parseSocks5Request);
    if (read.kind === 'closed') return this.clientLeft();
    if (read.kind === 'invalid') return this.refuse(errorForInvalid(read));
    const request = read.value;
    if (request.command === 'udp-associate' && this.options.udp) return { command: 'udp-associate', version: 5, declaredPort: request.target.port };
    const supported = request.command === 'connect' || (request.command === 'bind' && this.options.bind !== undefined);
    if (!supported) {
      const commands = ['CONNECT', ...(this.options.bind ? ['BIND'] : []), ...(this.options.udp ? ['UDP ASSOCIATE'] : [])].join(', ');
      return this.refuse(new GatewayError('TG_ERR_UNSUPPORTED', 'parse', `SOCKS5 command ${this.commandName(request.command)} is not supported (only ${commands})`));
    }
    const target = targetOf(request.target);
    if (typeof target === 'string') return this.refuse(new GatewayError('TG_ERR_BAD_TARGET', 'parse', target));
    return { command: request.command === 'bind' ? 'bind' : 'connect', version: 5, target };
  }

  /** UDP ASSOCIATE: bind the relay port, tell the client where it is, relay until the end. */
  private async associate(declaredPort: number, udp: SocksUdpOptions): Promise<CloseKind> {
    const association = new UdpAssociation(this.flow, this.socket, declaredPort, udp);
    let bound: Awaited<ReturnType<UdpAssociation['open']>>;
    try {
      bound = await association.open();
    } catch (err) {
      return this.refuse(new GatewayError('TG_ERR_INTERNAL', 'accept', `cannot bind a UDP relay port: ${(err as Error).message}`)) ?? 'refused';
    }
    this.socket.write(encodeSocks5Reply(SOCKS5_REPLY.succeeded, bound));
    return association.run();
  }

  /**
   * No authentication when no users are configured; username/password when they are (and
   * also when the client offers only that and an authenticator exists, so users are known).
   */
  private chooseMethod(offered: readonly number[]): number {
    const authenticator = this.options.authenticator;
    const canUserPass = authenticator !== null && offered.includes(SOCKS5_METHOD.usernamePassword);
    if (authenticator?.required) return canUserPass ? SOCKS5_METHOD.usernamePassword : SOCKS5_METHOD.noAcceptableMethods;
    if (offered.includes(SOCKS5_METHOD.noAuthentication)) return SOCKS5_METHOD.noAuthentication;
    return canUserPass ? SOCKS5_METHOD.usernamePassword : SOCKS5_METHOD.noAcceptableMethods;
  }

  /** RFC 1929; on failure the status is sent and the connection closed, as the RFC requires. */
  private async authenticate(): Promise<boolean> {
    this.phase = 'auth';
    const read = await this.reader.read(parseSocks5UserPass);
    if (read.kind === 'closed') {
      this.clientLeft();
      return false;
    }
    if (read.kind === 'invalid') {
      writeSocks5AuthRefusal(this.socket, 'credentials');
      this.publishAuthFailure('malformed');
      this.refuseSilently(new GatewayError('TG_ERR_AUTH_REQUIRED', 'auth', `malformed username/password message: ${read.reason}`), false);
      return false;
    }
    const { username, password } = read.value;
    const principal = await this.options.authenticator!.verify(username, password, this.flow.clientAddress, 'socks');
    if (this.timedOut || this.socket.destroyed) return false;
    if (!principal) {
      writeSocks5AuthRefusal(this.socket, 'credentials');
      this.publishAuthFailure('bad-credentials');
      // A real user's name helps whoever reads the log; anything else may be a password typed
      // into the name field, and the password itself never appears anywhere.
      const known = this.options.authenticator?.isKnownUser?.(username) === true;
      this.flow.log.info({ user: known ? username.slice(0, 128) : '[unknown]' }, 'SOCKS5 authentication failed');
      this.refuseSilently(new GatewayError('TG_ERR_AUTH_REQUIRED', 'auth', 'wrong user name or password'), false);
      return false;
    }
    this.flow.authenticated(principal);
    this.socket.write(encodeSocks5AuthStatus(true));
    return true;
  }

  /** Refuses a request with the version's failure reply (via refusal.ts), then closes. */
  private refuse(error: GatewayError): null {
    clearTimeout(this.timer);
    this.flow.failed(error);
    const refusal: Refusal = { kind: 'error', error };
    this.flow.log.info({ socks_version: this.version, phase: this.phase, code: error.code, reason: error.message }, 'SOCKS request refused');
    writeSocksRefusal(this.socket, this.version ?? 5, refusal);
    this.ended = 'refused';
    return null;
  }

  /** Refuses where the protocol has no reply of its own (unknown version, broken greeting). */
  private refuseSilently(error: GatewayError, close = true): null {
    clearTimeout(this.timer);
    this.flow.failed(error);
    this.flow.log.info({ socks_version: this.version, phase: this.phase, code: error.code, reason: error.message }, 'SOCKS handshake refused');
    if (close) this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.ended = 'refused';
    return null;
  }

  private clientLeft(): null {
    clearTimeout(this.timer);
    if (this.timedOut) return null;
    this.flow.log.info({ socks_version: this.version, phase: this.phase, unparsed_bytes: this.reader.pendingBytes }, 'SOCKS client closed during the handshake');
    this.socket.destroy();
    this.ended = 'client-closed';
    return null;
  }

  private onTimeout(): void {
    if (this.phase === 'done') return;
    this.timedOut = true;
    const error = new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', `the SOCKS handshake did not complete within ${this.options.handshakeTimeoutMs} ms (phase: ${this.phase})`);
    this.flow.failed(error);
    noteLimitBreach(this.flow.log, 'limits.socks_handshake_timeout', 'socks', { socks_version: this.version, phase: this.phase, ms: this.options.handshakeTimeoutMs });
    this.flow.log.info({ socks_version: this.version, phase: this.phase, reason: error.message }, 'SOCKS handshake timed out');
    // Only a request has a reply code to say "timed out" (0x06); earlier phases just close.
    if (this.phase === 'request' && this.version !== null) writeSocksRefusal(this.socket, this.version, { kind: 'error', error });
    else this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.ended = 'timeout';
    this.reader.detach();
  }

  private publishAuthFailure(reason: string): void {
    publish('tollgate:auth:failed', { frontend: 'socks', reason });
  }

  private commandName(command: string | number): string {
    return typeof command === 'number' ? `0x${command.toString(16).padStart(2, '0')}` : command.toUpperCase();
  }
}
