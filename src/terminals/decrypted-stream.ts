import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { GatewayError, asGatewayError } from '../errors/gateway-error';
import type { Flow } from '../flow/flow';
import { noteLimitBreach } from '../observability/limit-breach';
import { classifyFirstBytes, type Peek } from '../protocol/first-bytes';
import type { Target } from '../protocol/target';
import { relayStream } from '../relay/stream-relay';
import type { RelayEnd } from '../relay/relay';
import { guessStreamProtocol } from '../protocol/stream-protocol';

/** ALPN protocol ids that mean HTTP (RFC 7301 registry). */
const HTTP_ALPN = new Set(['http/0.9', 'http/1.0', 'http/1.1', 'h2', 'h2c', 'h3']);

export function isHttpAlpn(protocol: string): boolean {
  return HTTP_ALPN.has(protocol);
}

/** A ClientHello whose ALPN offer names protocols and none of them is HTTP (imap, smtp, postgresql...). */
export function offersOnlyNonHttp(alpn: readonly string[] | null): boolean {
  return alpn !== null && alpn.length > 0 && !alpn.some(isHttpAlpn);
}

/** A verified TLS connection to the origin of an inspected tunnel, opened through the egress door. */
export type StreamOriginConnect = (target: Target, tls: { servername: string | null; verifyCertificate: boolean; alpn: readonly string[] | null }) => Promise<{ socket: TLSSocket; address: string }>;

export interface DecryptedStreamOptions {
  readonly connect: StreamOriginConnect;
  /** Reads the first decrypted bytes (tunnel/peek.ts, injected). */
  readonly peek: (socket: Socket, timeoutMs: number, originSpoke?: AbortSignal) => Promise<Peek>;
  readonly idleTimeoutMs: number;
  /** limits.server_first_wait; 0 = a silent client is only ever waited for. */
  readonly serverFirstWaitMs: number;
  readonly headerTimeoutMs: number;
}

/** What the decrypted side of an inspected tunnel turned out to carry. */
export type DecryptedRoute = { readonly kind: 'http' } | { readonly kind: 'done'; readonly close: RelayEnd | 'refused' };

interface OriginSide {
  readonly socket: TLSSocket;
  /** Bytes the origin sent before the relay started (a greeting). */
  held: Buffer;
}

/**
 * The decrypted side of an inspected tunnel when it may not be HTTP: decided by the client's
 * ALPN and first decrypted bytes. HTTP goes back to the HTTP servers; anything else is relayed,
 * decrypted, between the client's TLS session and a verified TLS session to the origin, with
 * the rule's DLP detectors on both directions (`inspect_non_http: relay`, the default), or
 * closed (`inspect_non_http: deny`). A client that stays silent after the handshake for
 * limits.server_first_wait may be waiting for a greeting (IMAPS, SMTPS, POP3S): the origin is
 * dialled then, and whoever speaks first decides.
 */
export class DecryptedStreams {
  constructor(private readonly options: DecryptedStreamOptions) {}

  /** Opens the origin before the client's handshake, for a client that offers only non-HTTP ALPN. */
  openForAlpn(flow: Flow, servername: string | null, alpn: readonly string[]): Promise<{ socket: TLSSocket; address: string }> {
    return this.options.connect(flow.target!, { servername, verifyCertificate: flow.decision?.rule?.upstreamInsecure !== true, alpn });
  }

  /**
   * Routes a decrypted session whose ALPN did not say HTTP. `negotiated` is the ALPN protocol
   * agreed (non-HTTP) or false; `opened` an origin connection opened before the handshake.
   */
  async route(flow: Flow, client: TLSSocket, servername: string | null, negotiated: string | false, opened: { socket: TLSSocket; address: string } | null): Promise<DecryptedRoute> {
    if (negotiated !== false) return this.stream(flow, client, servername, negotiated, Buffer.alloc(0), opened ? { socket: opened.socket, held: Buffer.alloc(0) } : null);
    const wait = this.options.serverFirstWaitMs > 0 ? this.options.serverFirstWaitMs : this.options.headerTimeoutMs;
    let first = await this.options.peek(client, wait);
    if (first.kind === 'timeout' && first.bytes.length > 0 && wait < this.options.headerTimeoutMs) {
      // The client has started but what it sent could still be a request line ("G", "\r\nGE"):
      // it gets the whole header timeout to finish it, as an HTTP client would.
      client.unshift(first.bytes);
      first = await this.options.peek(client, this.options.headerTimeoutMs);
    }
    const routed = this.routeClientBytes(flow, client, servername, first, null);
    if (routed) return routed;
    // Still undecided after the header timeout: bytes that may yet become a request line are
    // never relayed unseen (that would skip the HTTP rules), and a client silent for that long
    // with server_first_wait off is not waited for any more.
    if (first.bytes.length > 0 || this.options.serverFirstWaitMs === 0) return this.timedOut(flow, client);
    // Silent after the handshake: taken for a server-first protocol (HTTP clients speak at once,
    // and those that preconnect negotiate HTTP by ALPN), so refused under inspect_non_http: deny.
    if (!this.allowsStreams(flow)) return this.stream(flow, client, servername, false, Buffer.alloc(0), null);
    let origin: OriginSide;
    try {
      origin = { socket: (await this.openOrigin(flow, servername, null)).socket, held: Buffer.alloc(0) };
    } catch (err) {
      return this.originFailed(flow, client, err);
    }
    const spoke = new AbortController();
    const onGreeting = (chunk: Buffer): void => {
      origin.socket.pause();
      origin.held = chunk;
      spoke.abort();
    };
    origin.socket.once('data', onGreeting);
    origin.socket.on('error', () => undefined);
    const second = await this.options.peek(client, this.options.headerTimeoutMs, spoke.signal);
    origin.socket.removeListener('data', onGreeting);
    if (spoke.signal.aborted && second.kind === 'timeout' && second.bytes.length === 0) return this.stream(flow, client, servername, false, Buffer.alloc(0), origin);
    const routed2 = this.routeClientBytes(flow, client, servername, second, origin);
    if (routed2) return routed2;
    origin.socket.destroy();
    return this.timedOut(flow, client);
  }

  /** HTTP back to the HTTP servers, a client that left closed; null = not decided by these bytes. */
  private routeClientBytes(flow: Flow, client: TLSSocket, servername: string | null, peek: Peek, origin: OriginSide | null): DecryptedRoute | Promise<DecryptedRoute> | null {
    if (peek.kind === 'opaque' && peek.firstBytes === 'http') {
      origin?.socket.destroy();
      client.unshift(peek.bytes);
      return { kind: 'http' };
    }
    if (peek.kind === 'closed' && (peek.bytes.length === 0 || classifyFirstBytes(peek.bytes) === 'needMore')) {
      // Gone before saying anything, or part-way through what could have been a request line.
      origin?.socket.destroy();
      client.destroy();
      return { kind: 'done', close: 'client-closed' };
    }
    // Undecided when time ran out: the caller waits longer or gives up, never relays.
    if (peek.kind === 'timeout') return null;
    return this.stream(flow, client, servername, false, peek.bytes, origin);
  }

  private allowsStreams(flow: Flow): boolean {
    return (flow.decision?.rule?.inspectNonHttp ?? 'relay') === 'relay';
  }

  private timedOut(flow: Flow, client: TLSSocket): DecryptedRoute {
    noteLimitBreach(flow.log, 'limits.header_timeout', flow.frontend, { limit_ms: this.options.headerTimeoutMs });
    flow.failed(new GatewayError('TG_ERR_CLIENT_TIMEOUT', 'parse', 'neither the client nor the origin spoke after the TLS handshake'));
    client.destroy();
    return { kind: 'done', close: 'timeout' };
  }

  private originFailed(flow: Flow, client: TLSSocket, err: unknown): DecryptedRoute {
    const error = asGatewayError(err, 'connect');
    flow.failed(error);
    flow.log.info({ code: error.code, reason: error.message }, 'cannot open the origin of a decrypted stream; closing the tunnel');
    client.destroy();
    return { kind: 'done', close: 'error' };
  }

  private openOrigin(flow: Flow, servername: string | null, alpn: readonly string[] | null): Promise<{ socket: TLSSocket; address: string }> {
    return this.options.connect(flow.target!, { servername, verifyCertificate: flow.decision?.rule?.upstreamInsecure !== true, alpn }).then((opened) => {
      flow.connected(opened.address);
      return opened;
    });
  }

  private async stream(flow: Flow, client: TLSSocket, servername: string | null, alpn: string | false, replayUp: Buffer, opened: OriginSide | null): Promise<DecryptedRoute> {
    const decision = flow.decision!;
    if (!this.allowsStreams(flow)) {
      const reason = 'the decrypted stream is not HTTP, and the rule does not allow that (inspect_non_http: deny)';
      flow.decided({ ...decision, action: 'deny', reason }, true);
      flow.log.info({ reason }, 'decrypted stream refused');
      opened?.socket.destroy();
      client.end();
      client.destroySoon();
      return { kind: 'done', close: 'refused' };
    }
    let origin = opened;
    if (!origin) {
      try {
        origin = { socket: (await this.openOrigin(flow, servername, null)).socket, held: Buffer.alloc(0) };
      } catch (err) {
        return this.originFailed(flow, client, err);
      }
    }
    const protocol = guessStreamProtocol(alpn === false ? null : alpn, replayUp, origin.held);
    const dlp = decision.rule?.dlp ?? null;
    flow.log.info({ protocol }, 'relaying a decrypted stream that is not HTTP');
    const result = await relayStream(client, origin.socket, {
      idleTimeoutMs: this.options.idleTimeoutMs,
      dlp: dlp ? { detectors: dlp.detectors, cut: dlp.action === 'deny' } : null,
      replayUp,
      replayDown: origin.held,
    });
    const action = dlp?.action ?? 'log';
    flow.streamed({
      protocol,
      bytesFromClient: result.bytesUp,
      bytesToClient: result.bytesDown,
      dlp: result.findings.map((f) => ({ detector: f.detector, offset: f.offset, action, direction: f.direction })),
    });
    if (result.cut) {
      const { detector, offset, direction } = result.cut;
      flow.failed(new GatewayError('TG_ERR_DLP_BLOCKED', 'relay', `stream cut: ${detector} detected at byte ${offset} (${direction})`));
      flow.log.info({ detector, offset, direction }, 'decrypted stream cut by DLP');
    }
    return { kind: 'done', close: result.close };
  }
}
