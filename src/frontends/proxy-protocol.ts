import type { Server, Socket } from 'node:net';
import { peerAddress, setProxiedPeer } from '../flow/flow';
import type { Logger } from '../logging/logger';
import { noteLimitBreach } from '../observability/limit-breach';
import { parseProxyV2 } from '../protocol/proxy-v2';

export interface ProxyProtocolOptions {
  /** `limits.proxy_header_timeout`: from accept to a complete header. */
  readonly timeoutMs: number;
  /** The listener's configuration key (log lines). */
  readonly listener: string;
  /** The listener's front-end label (limit-breach events). */
  readonly frontend: string;
  readonly logger: Logger;
}

/**
 * Makes `server` require a PROXY protocol v2 header on every connection before its own protocol
 * starts. The server's existing 'connection' handlers (the front-end: an http.Server's parser,
 * a SOCKS handshake, ...) are moved behind the header: they see the socket only once the header
 * was read and removed, with the client address from the header recorded for that socket.
 * A connection without a valid header is closed and logged: behind a balancer that sends the
 * header, its absence means someone reached the listener around the balancer.
 *
 * The header has its own deadline, `limits.proxy_header_timeout`, separate from the client's
 * request header deadline: a balancer sends the header at once, so a connection still without
 * one is not a slow client but someone holding a descriptor. Admission to the global connection
 * limit happens before this (see Gateway.bind), so such connections count from accept.
 *
 * The server keeps its own listen(), so an http.Server's header and request timeouts still run.
 */
export function requireProxyProtocol(server: Server, options: ProxyProtocolOptions): void {
  const frontEnd = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const peer = peerAddress(socket);
    let buffered: Buffer = Buffer.alloc(0);
    const refuse = (reason: string): void => {
      cleanup();
      options.logger.warn({ listener: options.listener, client: peer.address, client_port: peer.port, reason }, 'connection refused: no valid PROXY protocol v2 header');
      socket.destroy();
    };
    const timer = setTimeout(() => {
      noteLimitBreach(options.logger, 'limits.proxy_header_timeout', options.frontend, { client: peer.address, client_port: peer.port, ms: options.timeoutMs, received: buffered.length });
      refuse(`no complete header within ${options.timeoutMs} ms (limits.proxy_header_timeout)`);
    }, options.timeoutMs);
    const onError = (): void => cleanup();
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const result = parseProxyV2(buffered);
      if (result.kind === 'needMore') return;
      if (result.kind === 'invalid') {
        refuse(result.reason);
        return;
      }
      // Paused and unhooked in this same callback so no byte after the header is lost.
      socket.pause();
      cleanup();
      const header = result.value;
      if (header.command === 'proxy' && header.family !== 'unspec') setProxiedPeer(socket, header.source);
      const rest = buffered.subarray(result.consumed);
      if (rest.length > 0) socket.unshift(rest);
      for (const handler of frontEnd) handler.call(server, socket);
      socket.resume();
    };
    function cleanup(): void {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onError);
    }
    socket.on('error', onError);
    socket.on('close', onError);
    socket.on('data', onData);
  });
}
