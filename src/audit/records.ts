import type { ConnectionRecord, DlpAuditEntry, PinningRecord, RequestRecord, StreamDlpAuditEntry, TlsSummary } from './record-fields';

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
