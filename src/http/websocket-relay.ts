import type { Socket } from 'node:net';
import type { CloseKind } from '../flow/flow';
import type { Logger } from '../logging/logger';
import type { DlpPolicy } from '../policy/dlp/dlp-types';
import { Relay } from '../relay/relay';
import { forwardResponseHeaders, rawHeaderValue, withoutHopByHop } from './headers';
import type { UpgradedReply } from './origin-leg';
import type { UpgradeSocket } from './upgrade';
import { relayWithDlp, type WebSocketDlpEvents } from './websocket-dlp';

export interface UpgradedExchange {
  readonly client: UpgradeSocket;
  /** The origin's 101 response and its connection. */
  readonly upgrade: UpgradedReply;
  readonly via: string;
  readonly idleTimeoutMs: number;
  readonly log: Logger;
  /** DLP on the messages (the rule's `dlp`); null = frames are relayed as opaque bytes. */
  readonly dlp?: { readonly policy: DlpPolicy; readonly events: WebSocketDlpEvents } | null;
}

export interface UpgradedOutcome {
  readonly status: number;
  /** Bytes relayed after the handshake, each way. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly close: CloseKind;
}

/** The 101 head for the client: the origin's end-to-end fields (Sec-WebSocket-*) and our Via. */
function switchingHead(upgrade: UpgradedReply, via: string): string {
  const headers = forwardResponseHeaders(withoutHopByHop(upgrade.rawHeaders), upgrade.httpVersion, via);
  headers.push('Connection', 'Upgrade', 'Upgrade', rawHeaderValue(upgrade.rawHeaders, 'upgrade') ?? 'websocket');
  let head = `HTTP/1.1 101 ${upgrade.statusMessage || 'Switching Protocols'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return `${head}\r\n`;
}

/**
 * After the origin agreed to a WebSocket upgrade: send the client its 101, then relay frames
 * both ways. Without DLP as opaque bytes with the tunnel relay (backpressure, half-close,
 * resets passed on, idle timeout): the handshake is what policy and audit decide on. With DLP,
 * every message is reassembled and scanned first (websocket-dlp.ts).
 */
export async function relayUpgraded(exchange: UpgradedExchange): Promise<UpgradedOutcome> {
  const { client, upgrade } = exchange;
  // The origin connection is the net/TLS socket the egress door opened.
  const upSocket = upgrade.socket as Socket;
  const clientSocket = client.socket;
  if (exchange.dlp) {
    clientSocket.write(switchingHead(upgrade, exchange.via));
    const result = await relayWithDlp(clientSocket, client.head, upSocket, exchange.dlp.policy, exchange.idleTimeoutMs, exchange.dlp.events);
    exchange.log.debug({ close: result.close }, 'inspected websocket relay ended');
    return { status: upgrade.status, ...result };
  }
  const upWrittenAtStart = upSocket.bytesWritten;
  // Frames the origin sent right after its 101 were read already and are put back in the
  // socket's buffer: the relay passes them on, and they count as relayed.
  const upReadAtStart = upSocket.bytesRead - upSocket.readableLength;
  clientSocket.write(switchingHead(upgrade, exchange.via));
  const splice = new Relay(clientSocket, upSocket, exchange.idleTimeoutMs);
  splice.startUpstream(client.head);
  const result = await splice.result();
  exchange.log.debug({ close: result.close }, 'websocket relay ended');
  return {
    status: upgrade.status,
    bytesUp: Math.max(0, result.bytesUp - upWrittenAtStart),
    bytesDown: Math.max(0, result.bytesDown - upReadAtStart),
    close: result.close,
  };
}
