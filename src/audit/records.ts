import type { ConnectionRecord, DlpAuditEntry, PinningRecord, RequestRecord, StreamDlpAuditEntry, TlsSummary, UdpAssociationRecord, UdpDestinationEntry } from './record-fields';

/**
 * The one place every audit record is built, from the facts of a flow or request. The inputs
 * are plain facts (the flow and the HTTP layers above fill them in), so what a record says can
 * be read here in one screen, and a field can only be named one way.
 */

/** What a record says about the decision (policy's Decision has these fields). */
export interface DecisionFacts {
  readonly action: string;
  readonly code: string;
  readonly rule: { readonly id: string } | null;
  readonly reason: string;
  readonly policyVersion: string;
  /** The way out chosen for the destination: [] direct, else parent names (policy's Via). */
  readonly via?: readonly string[];
}

/** `via` of a record: how traffic to the destination leaves; null when the decision lets nothing out. */
function viaOf(decision: DecisionFacts | null): string | null {
  if (!decision?.via || decision.action === 'deny') return null;
  return decision.via.length === 0 ? 'direct' : decision.via.join(',');
}

/** What every record says about where the traffic came from. */
export interface ClientFacts {
  readonly flowId: string;
  readonly frontend: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly user: string | null;
}

export interface ConnectionFacts extends ClientFacts {
  readonly startTime: Date;
  /** host:port as an authority; '' when no target was learned. */
  readonly target: string;
  readonly sni: string | null;
  readonly alpn: readonly string[] | null;
  readonly firstBytes: string | null;
  readonly decision: DecisionFacts | null;
  readonly upstreamAddress: string | null;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly durationMs: number;
  readonly close: string;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly requests: number;
  /** A tunnel relayed as a stream that is not HTTP: its protocol guess, bytes and DLP findings. */
  readonly stream?: StreamFacts | null;
}

export interface StreamFacts {
  readonly protocol: string;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly dlp: readonly StreamDlpAuditEntry[];
}

function streamFields(stream: StreamFacts | null | undefined): Partial<ConnectionRecord> {
  if (!stream) return {};
  return { protocol: stream.protocol, stream_bytes_from_client: stream.bytesFromClient, stream_bytes_to_client: stream.bytesToClient, dlp: stream.dlp };
}

export function connectionRecord(f: ConnectionFacts): ConnectionRecord {
  const decision = f.decision;
  return {
    type: 'connection',
    time: f.startTime.toISOString(),
    flow_id: f.flowId,
    frontend: f.frontend,
    client: f.clientAddress,
    client_port: f.clientPort,
    user: f.user,
    target: f.target,
    sni: f.sni,
    alpn: f.alpn,
    first_bytes: f.firstBytes,
    action: decision?.action ?? 'none',
    rule: decision?.rule?.id ?? null,
    decision_code: decision?.code ?? 'none',
    reason: decision?.reason ?? '',
    policy_version: decision?.policyVersion ?? '',
    via: viaOf(decision),
    upstream_address: f.upstreamAddress,
    bytes_from_client: f.bytesFromClient,
    bytes_to_client: f.bytesToClient,
    duration_ms: f.durationMs,
    close: f.close,
    error: f.error ? `${f.error.code}: ${f.error.message}` : null,
    requests: f.requests,
    ...streamFields(f.stream),
  };
}

/** One HTTP request, its values already redacted where they carry secrets. */
export interface RequestFacts extends ClientFacts {
  readonly requestId: string;
  readonly scheme: 'http' | 'https';
  readonly host: string;
  readonly port: number;
  readonly sni: string | null;
  readonly authority: string | null;
  readonly method: string;
  readonly path: string;
  readonly httpVersion: string;
  readonly decision: DecisionFacts;
  readonly status: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly durationMs: number;
  readonly error: string | null;
  readonly cache: string | null;
  readonly upstreamCertSha256: string | null;
  readonly clientTls: TlsSummary | null;
  readonly upstreamTls: TlsSummary | null;
  readonly requestHeaders: Readonly<Record<string, string | readonly string[]>>;
  readonly responseHeaders: Readonly<Record<string, string | readonly string[]>> | null;
  readonly httpRule: string | null;
  readonly flaggedBy: readonly string[];
  readonly dlp: readonly DlpAuditEntry[] | null;
}

/** A reverse-proxy listener's request record: the same record, with the route that served it and its backend. */
export function withReverseRoute(record: RequestRecord, route: { readonly route: string; readonly backend: string } | null): RequestRecord {
  return { ...record, route: route?.route ?? null, backend: route?.backend ?? null };
}

export function requestRecord(f: RequestFacts): RequestRecord {
  return {
    type: 'request',
    // When the request arrived, as a connection record's time is when its flow began: the
    // record is written at the end, `duration_ms` later.
    time: new Date(Date.now() - f.durationMs).toISOString(),
    request_id: f.requestId,
    flow_id: f.flowId,
    frontend: f.frontend,
    client: f.clientAddress,
    client_port: f.clientPort,
    user: f.user,
    scheme: f.scheme,
    host: f.host,
    port: f.port,
    sni: f.sni,
    authority: f.authority,
    method: f.method,
    path: f.path,
    status: f.status,
    bytes_from_client: f.bytesFromClient,
    bytes_to_client: f.bytesToClient,
    duration_ms: f.durationMs,
    action: f.decision.action,
    rule: f.decision.rule?.id ?? null,
    decision_code: f.decision.code,
    reason: f.decision.reason,
    policy_version: f.decision.policyVersion,
    via: viaOf(f.decision),
    error: f.error,
    cache: f.cache,
    upstream_cert_sha256: f.upstreamCertSha256,
    client_tls: f.clientTls,
    upstream_tls: f.upstreamTls,
    request_headers: f.requestHeaders,
    response_headers: f.responseHeaders,
    http_version: f.httpVersion,
    http_rule: f.httpRule,
    flagged_by: f.flaggedBy,
    dlp: f.dlp,
  };
}

/** A name switched from inspect to splice by certificate-pinning detection. */
export function pinningRecord(name: string, clients: number, until: Date): PinningRecord {
  return {
    type: 'pinning',
    time: new Date().toISOString(),
    name,
    action: 'auto-splice',
    distinct_clients: clients,
    until: until.toISOString(),
    reason: `${clients} distinct clients rejected the minted certificate for ${name}`,
  };
}

/** What a SOCKS5 UDP association did, from its UDP ASSOCIATE to its end. */
export interface UdpAssociationFacts extends ClientFacts {
  readonly startTime: Date;
  readonly relayAddress: string;
  readonly clientUdp: string | null;
  readonly destinations: readonly UdpDestinationEntry[];
  readonly datagramsFromClient: number;
  readonly datagramsToClient: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly dropped: Readonly<Record<string, number>>;
  readonly policyVersion: string;
  readonly durationMs: number;
  readonly close: string;
}

/** One SOCKS5 UDP association: its destinations, datagrams and bytes each way, and what was dropped. */
export function udpAssociationRecord(f: UdpAssociationFacts): UdpAssociationRecord {
  return {
    type: 'udp_association',
    time: f.startTime.toISOString(),
    // Parent proxies carry TCP only: datagrams always leave directly.
    via: 'direct',
    flow_id: f.flowId,
    frontend: f.frontend,
    client: f.clientAddress,
    client_port: f.clientPort,
    user: f.user,
    policy_version: f.policyVersion,
    relay_address: f.relayAddress,
    client_udp: f.clientUdp,
    destinations: f.destinations,
    datagrams_from_client: f.datagramsFromClient,
    datagrams_to_client: f.datagramsToClient,
    bytes_from_client: f.bytesFromClient,
    bytes_to_client: f.bytesToClient,
    dropped: f.dropped,
    duration_ms: f.durationMs,
    close: f.close,
  };
}
