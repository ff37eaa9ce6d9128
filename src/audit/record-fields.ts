/**
 * The audit record formats: the field names below are the contract with whoever reads the
 * audit trail (SIEM pipelines, the network team's scripts); change them only deliberately.
 * docs/audit.md describes each field, and src/audit/records.test.ts keeps the two in step.
 * One `connection` record per flow; one `request` record per HTTP request the gateway saw
 * inside an inspected tunnel or through its plain HTTP front-ends.
 */

export interface TlsSummary {
  readonly version: string | null;
  readonly cipher: string | null;
}

interface CommonFields {
  readonly time: string;
  readonly flow_id: string;
  readonly frontend: string;
  readonly client: string;
  readonly client_port: number;
  readonly user: string | null;
  /** deny, splice, inspect; `none` when no decision was made. An HTTP-rule or DLP denial is `deny`. */
  readonly action: string;
  readonly rule: string | null;
  /** rule, default, port, sni, pinning, fronting, http_rule, dlp, none. */
  readonly decision_code: string;
  readonly reason: string;
  readonly policy_version: string;
  /** The way out: `direct`, or parent proxy names (`a,b` = failover order); null when nothing may leave. */
  readonly via: string | null;
}

export interface ConnectionRecord extends CommonFields {
  readonly type: 'connection';
  readonly target: string;
  readonly sni: string | null;
  readonly alpn: readonly string[] | null;
  /** What the first client bytes were: tls, http, other, none. */
  readonly first_bytes: string | null;
  readonly upstream_address: string | null;
  readonly bytes_from_client: number;
  readonly bytes_to_client: number;
  readonly duration_ms: number;
  /** How it ended: client-closed, upstream-closed, client-reset, upstream-reset, timeout, refused, error, shutdown. */
  readonly close: string;
  readonly error: string | null;
  readonly requests: number;
  /** Only on tunnels relayed as a stream that is not HTTP (decrypted, or cleartext). */
  readonly protocol?: string;
  readonly stream_bytes_from_client?: number;
  readonly stream_bytes_to_client?: number;
  readonly dlp?: readonly StreamDlpAuditEntry[];
}

/** A DLP finding in a relayed stream: which way it went, and whether it cut the stream. */
export interface StreamDlpAuditEntry extends DlpAuditEntry {
  readonly direction: 'client-to-origin' | 'origin-to-client';
}

export interface RequestRecord extends CommonFields {
  readonly type: 'request';
  readonly request_id: string;
  readonly scheme: 'http' | 'https';
  readonly host: string;
  readonly port: number;
  readonly sni: string | null;
  /** The authority the client wrote (HTTP/2 :authority, else Host), as sent; null when absent. */
  readonly authority: string | null;
  readonly method: string;
  /** Path and query, with configured query parameters redacted. */
  readonly path: string;
  readonly status: number;
  readonly bytes_from_client: number;
  readonly bytes_to_client: number;
  readonly duration_ms: number;
  readonly error: string | null;
  readonly cache: string | null;
  readonly upstream_cert_sha256: string | null;
  readonly client_tls: TlsSummary | null;
  readonly upstream_tls: TlsSummary | null;
  readonly request_headers: Readonly<Record<string, string | readonly string[]>>;
  readonly response_headers: Readonly<Record<string, string | readonly string[]>> | null;
  /** The client's HTTP version: 1.0, 1.1, or 2.0 (HTTP/2 inside an inspected tunnel). */
  readonly http_version: string;
  /** The HTTP rule whose allow or deny decided this request, if one did. */
  readonly http_rule: string | null;
  /** Report-only matches: ids of `log` HTTP rules, and `<rule>/dlp` for report-only DLP findings. Empty = not flagged. */
  readonly flagged_by: readonly string[];
  /** DLP findings: detector name and byte offset only, never the matched value; null = not scanned. */
  readonly dlp: readonly DlpAuditEntry[] | null;
  /** Reverse-proxy requests only (absent elsewhere): the route that served it; null when none did (421). */
  readonly route?: string | null;
  /** Reverse-proxy requests only: the route's backend, scheme and authority; null when `route` is. */
  readonly backend?: string | null;
}

export interface DlpAuditEntry {
  readonly detector: string;
  /** Byte offset in the request body where the match starts. */
  readonly offset: number;
  readonly action: 'deny' | 'log';
}

/** A name switched from inspect to splice by certificate-pinning detection. */
export interface PinningRecord {
  readonly type: 'pinning';
  readonly time: string;
  readonly name: string;
  readonly action: 'auto-splice';
  readonly distinct_clients: number;
  readonly until: string;
  readonly reason: string;
}

export type AuditRecord = ConnectionRecord | RequestRecord | PinningRecord | UdpAssociationRecord;

/** One destination of a SOCKS5 UDP association (docs/audit.md). */
export interface UdpDestinationEntry {
  /** As the client named it: host:port. */
  readonly target: string;
  /** The address datagrams went to, after resolution and the destination guard. */
  readonly address: string;
  readonly action: string;
  readonly rule: string | null;
  readonly datagrams_to_origin: number;
  readonly bytes_to_origin: number;
  readonly datagrams_from_origin: number;
  readonly bytes_from_origin: number;
}

/** One SOCKS5 UDP ASSOCIATE, written when it ends (docs/audit.md). */
export interface UdpAssociationRecord extends Omit<CommonFields, 'action' | 'rule' | 'decision_code' | 'reason'> {
  readonly type: 'udp_association';
  /** The relay port's address the client was told (BND.ADDR:BND.PORT). */
  readonly relay_address: string;
  /** Where the client's datagrams came from (address:port); null when none came. */
  readonly client_udp: string | null;
  readonly destinations: readonly UdpDestinationEntry[];
  readonly datagrams_from_client: number;
  readonly datagrams_to_client: number;
  /** Payload bytes (DATA, without the SOCKS header) each way. */
  readonly bytes_from_client: number;
  readonly bytes_to_client: number;
  /** Datagrams dropped, by reason. */
  readonly dropped: Readonly<Record<string, number>>;
  readonly duration_ms: number;
  /** client-closed, timeout, limit, error, shutdown. */
  readonly close: string;
}
