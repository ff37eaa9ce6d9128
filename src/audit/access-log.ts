import { ERROR_CATALOGUE, type ErrorCode } from '../errors/gateway-error';
import type { AuditRecord, ConnectionRecord, RequestRecord } from './record-fields';

/**
 * Audit records as one-line access-log entries close to Squid's native `access.log` format,
 * which many SIEM parsers read (docs/audit.md, "Access-log lines"):
 *
 *   time elapsed client code/status bytes method URL user hierarchy/peer type  action rule id
 *
 * The first ten fields are Squid's (`%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`):
 * the end time in Unix seconds with milliseconds, the duration in milliseconds, the client
 * address, a Squid result code and the status, the bytes sent to the client, the method, the
 * URL, the user, how the origin was reached, and the response's media type. Three fields of
 * tollgate's own follow: the action, the deciding rule (the HTTP rule when one decided), and the
 * request id (tunnels: the flow id), which finds the full record in the audit file. Fields never
 * contain spaces: whitespace and control characters are percent-encoded; an empty value is `-`.
 *
 * One line per request and per tunnel, as Squid logs them. Connection records of plain-HTTP
 * client connections that carried requests, and pinning records, have no line (null).
 */
export function accessLogLine(record: AuditRecord): string | null {
  if (record.type === 'request') return requestLine(record);
  if (record.type === 'connection') return connectionLine(record);
  return null;
}

function field(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value).replace(/[\s\x00-\x1f\x7f%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

function endTime(record: { time: string; duration_ms: number }): string {
  const end = Date.parse(record.time) + record.duration_ms;
  return (Math.round(end) / 1000).toFixed(3);
}

function elapsed(ms: number): string {
  return String(Math.round(ms)).padStart(6);
}

function status3(status: number): string {
  return String(status).padStart(3, '0');
}

function mediaType(headers: RequestRecord['response_headers']): string | null {
  const value = headers?.['content-type'];
  const text = Array.isArray(value) ? value[0] : value;
  return typeof text === 'string' ? text.split(';')[0]!.trim() || null : null;
}

/** Squid's hierarchy code: straight to the origin, or through a parent proxy (`via` names one). */
function hierarchy(via: string | null): string {
  return via === null || via === 'direct' ? 'HIER_DIRECT' : 'FIRSTUP_PARENT';
}

/** Front-ends whose connections carry requests without a tunnel: their connection line is no CONNECT. */
const PLAIN_HTTP_FRONTENDS = new Set(['explicit-http', 'transparent-http', 'reverse']);

function requestLine(r: RequestRecord): string {
  const aborted = r.status === 0 ? '_ABORTED' : '';
  const code =
    r.action === 'deny'
      ? 'TCP_DENIED'
      : r.cache === 'hit' || r.cache === 'stale-while-revalidate'
        ? 'TCP_HIT'
        : r.cache === 'revalidated'
          ? 'TCP_REFRESH_UNMODIFIED'
          : r.cache === 'stale'
            ? 'TCP_REFRESH_FAIL_OLD'
            : 'TCP_MISS';
  // Whether the origin answered: a TLS session with it, or a plain exchange without an error.
  const reachedOrigin =
    r.action !== 'deny' && r.cache !== 'hit' && r.cache !== 'stale' && r.cache !== 'stale-while-revalidate' && (r.upstream_tls !== null || (r.scheme === 'http' && r.error === null));
  const host = r.host.includes(':') ? `[${r.host}]` : r.host;
  const defaultPort = r.scheme === 'https' ? 443 : 80;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(r.path) ? r.path : `${r.scheme}://${host}${r.port === defaultPort ? '' : `:${r.port}`}${r.path}`;
  return [
    endTime(r),
    elapsed(r.duration_ms),
    field(r.client),
    `${code}${aborted}/${status3(r.status)}`,
    String(r.bytes_to_client),
    field(r.method),
    field(url),
    field(r.user),
    reachedOrigin ? `${hierarchy(r.via)}/${field(r.host)}` : 'HIER_NONE/-',
    field(mediaType(r.response_headers)),
    field(r.action),
    field(r.http_rule ?? r.rule),
    field(r.request_id),
  ].join(' ');
}

/** The HTTP status a refused connection was answered with, from its error code (docs/errors.md). */
function refusalStatus(c: ConnectionRecord): number {
  if (c.action === 'deny') return 403;
  const code = c.error?.split(':')[0] as ErrorCode | undefined;
  return code && code in ERROR_CATALOGUE ? ERROR_CATALOGUE[code].httpStatus : 0;
}

function connectionLine(c: ConnectionRecord): string | null {
  if (PLAIN_HTTP_FRONTENDS.has(c.frontend) && c.requests > 0) return null;
  const refused = c.close === 'refused' || c.action === 'deny' || c.action === 'none';
  const code = c.action === 'deny' ? 'TCP_DENIED' : refused ? 'NONE_NONE' : 'TCP_TUNNEL';
  const status = refused ? refusalStatus(c) : 200;
  const method = PLAIN_HTTP_FRONTENDS.has(c.frontend) ? '-' : 'CONNECT';
  return [
    endTime(c),
    elapsed(c.duration_ms),
    field(c.client),
    `${code}/${status3(status)}`,
    String(c.bytes_to_client),
    method,
    field(c.target),
    field(c.user),
    c.upstream_address ? `${hierarchy(c.via)}/${field(c.upstream_address)}` : 'HIER_NONE/-',
    '-',
    field(c.action),
    field(c.rule),
    field(c.flow_id),
  ].join(' ');
}
