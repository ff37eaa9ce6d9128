import diagnosticsChannel from 'node:diagnostics_channel';

/**
 * Lifecycle events, published on node:diagnostics_channel (as undici does): free when nobody
 * subscribes, and the one source that metrics and tests read. Publishers call the `publish*`
 * helpers below; subscribers use `subscribe()`. Messages carry no secrets and no payloads.
 */

/** The channel names and the message each carries. */
export interface GatewayEvents {
  /** A flow's decision was made (one per flow; plain HTTP: one per request). `rule` is null for default_action. */
  'tollgate:flow:decided': { frontend: string; action: string; code: string; rule: string | null };
  /** A tunnel (CONNECT, SOCKS, transparent TLS) was handed to the tunnel pipeline. */
  'tollgate:tunnel:opened': { frontend: string };
  /** A tunnel that was opened ended (exactly once per opened tunnel). */
  'tollgate:tunnel:closed': { frontend: string };
  /** A flow ended. */
  'tollgate:flow:closed': { frontend: string; action: string; close: string; bytesFromClient: number; bytesToClient: number; durationMs: number };
  /**
   * One HTTP request inside an inspected tunnel or through a plain HTTP front-end completed.
   * `action` and `decisionCode` are its record's: `deny` with `http_rule` or `dlp` when an HTTP
   * rule or DLP denied it; `rule` is the destination rule, `httpRule` the HTTP rule that decided.
   */
  'tollgate:request:completed': {
    scheme: 'http' | 'https';
    status: number;
    durationMs: number;
    cache: string | null;
    action: string;
    decisionCode: string;
    rule: string | null;
    httpRule: string | null;
  };
  /** A configured limit was breached; `limit` is the config key (e.g. `header_timeout`). */
  'tollgate:limit:breached': { limit: string; frontend: string };
  /** A leaf certificate was minted. */
  'tollgate:cert:minted': { durationMs: number; cacheSize: number };
  /** A policy or configuration reload was attempted. */
  'tollgate:policy:reloaded': { ok: boolean; version: string };
  /** A proxy or SOCKS authentication failed. */
  'tollgate:auth:failed': { frontend: string; reason: string };
  /** Audit records could not be written (a failed write(2) of one batch of `records`). */
  'tollgate:audit:write-failed': { records: number };
  /** A DLP detector matched an upload; never carries the matched value. */
  'tollgate:dlp:matched': { detector: string; action: 'deny' | 'log' };
  /** A SOCKS5 UDP datagram was relayed (`to-origin` or `to-client`), with its payload size. */
  'tollgate:socks:udp-relayed': { direction: 'to-origin' | 'to-client'; bytes: number };
  /** A SOCKS5 UDP datagram was dropped; `reason` is one of a fixed set (README "SOCKS"). */
  'tollgate:socks:udp-dropped': { reason: string };
  /** A SOCKS5 UDP association ended; `close` is how (client-closed, timeout, limit, error, shutdown). */
  'tollgate:socks:udp-closed': { close: string };
  /** A SOCKS5 BIND ended its wait: connected, timeout, refused, wrong-peer (a connection turned away). */
  'tollgate:socks:bind': { result: string };
  /** One connection attempt through a parent proxy (upstream.parents) and how it went. */
  'tollgate:egress:parent': { parent: string; outcome: 'connected' | 'refused' | 'unreachable' };
}

export type GatewayEventName = keyof GatewayEvents;

const channels = new Map<GatewayEventName, diagnosticsChannel.Channel>();

function channelOf(name: GatewayEventName): diagnosticsChannel.Channel {
  let channel = channels.get(name);
  if (!channel) {
    channel = diagnosticsChannel.channel(name);
    channels.set(name, channel);
  }
  return channel;
}

export function publish<N extends GatewayEventName>(name: N, message: GatewayEvents[N]): void {
  const channel = channelOf(name);
  // hasSubscribers first: building nothing when nobody listens keeps the hot path free.
  if (channel.hasSubscribers) channel.publish(message);
}

/**
 * Subscribes to one event; returns the unsubscribe function.
 *
 * Subscribes on the very channel object that `publish` uses (held in `channels`), not by name:
 * Node 20 keeps channels by name in a weak map whose finaliser deletes the name, so after an
 * earlier channel of the same name is collected, `diagnosticsChannel.subscribe(name)` and a later
 * `diagnosticsChannel.channel(name)` can return two different objects and every message is lost.
 */
export function subscribe<N extends GatewayEventName>(name: N, onMessage: (message: GatewayEvents[N]) => void): () => void {
  const listener = (message: unknown): void => onMessage(message as GatewayEvents[N]);
  const channel = channelOf(name);
  channel.subscribe(listener);
  return () => {
    channel.unsubscribe(listener);
  };
}
