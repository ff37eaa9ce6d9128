import type { Socket } from 'node:net';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { ProxyAuthError } from './auth-error';
import { SOCKS4_REPLY, SOCKS5_METHOD, SOCKS5_REPLY, type Socks4ReplyCode } from '../protocol/socks-wire';
import { encodeSocks4Reply } from '../protocol/socks4-codec';
import { encodeSocks5AuthStatus, encodeSocks5MethodSelection, encodeSocks5Reply } from '../protocol/socks5-codec';
import type { GatewayError } from './gateway-error';

/**
 * The one place that turns "this flow is refused" into what the client sees, in its own
 * protocol: an HTTP status and block page, a SOCKS reply code, or a TLS alert.
 */

/** What a refusal page says of a policy decision (policy's Decision has these fields). */
export interface DenyDecision {
  readonly reason: string;
  readonly rule: { readonly id: string } | null;
}

/** `http-deny`: an HTTP rule (inside an allowed destination) denied this one request. */
export type Refusal =
  | { readonly kind: 'deny'; readonly decision: DenyDecision }
  | { readonly kind: 'http-deny'; readonly ruleId: string; readonly reason: string }
  | { readonly kind: 'error'; readonly error: GatewayError };

/** A fatal TLS alert record: access_denied (49), RFC 8446 section 6.2. */
export const TLS_ALERT_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
/** A fatal TLS alert record: internal_error (80): the gateway could not serve the connection. */
const TLS_ALERT_INTERNAL_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);

function httpStatusOf(refusal: Refusal): number {
  return refusal.kind === 'error' ? refusal.error.spec.httpStatus : 403;
}

function socks5ReplyOf(refusal: Refusal): number {
  return refusal.kind === 'error' ? refusal.error.spec.socks5Reply : SOCKS5_REPLY.notAllowedByRuleset;
}

function socks4ReplyOf(refusal: Refusal): number {
  return refusal.kind === 'error' ? refusal.error.spec.socks4Reply : SOCKS4_REPLY.rejected;
}

/** A stable code for logs and audit: `denied` for policy, else the error code. */
export function refusalCode(refusal: Refusal): string {
  return refusal.kind === 'error' ? refusal.error.code : 'denied';
}

export function refusalReason(refusal: Refusal): string {
  if (refusal.kind === 'deny') return refusal.decision.reason;
  return refusal.kind === 'http-deny' ? refusal.reason : refusal.error.message;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface BlockPage {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Headers a refusal needs besides the page: the Basic challenge, or when to retry. */
function protocolHeaders(refusal: Refusal): Record<string, string> {
  if (refusal.kind !== 'error' || !(refusal.error instanceof ProxyAuthError)) return {};
  const error = refusal.error;
  if (error.code === 'TG_ERR_AUTH_THROTTLED') return error.retryAfterSeconds === null ? {} : { 'retry-after': String(error.retryAfterSeconds) };
  // RFC 7617 section 2.1: charset="UTF-8" asks clients to send non-ASCII credentials as UTF-8.
  return { 'proxy-authenticate': `Basic realm="${error.realm}", charset="UTF-8"` };
}

/** A short page a person can act on: what happened, why, which rule, and an id to quote. */
function blockPage(refusal: Refusal, requestId: string, destination: string): BlockPage {
  const status = httpStatusOf(refusal);
  const title = refusal.kind === 'error' ? (STATUS_CODES[status] ?? 'Error') : 'Blocked by policy';
  const lines: [string, string][] = [
    ['Destination', destination],
    ['Reason', refusalReason(refusal)],
  ];
  if (refusal.kind === 'deny') lines.push(['Rule', refusal.decision.rule?.id ?? 'default_action']);
  else if (refusal.kind === 'http-deny') lines.push(['Rule', refusal.ruleId]);
  else lines.push(['Error', refusal.error.code]);
  lines.push(['Request id', requestId]);
  const rows = lines.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${status} ${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>tollgate refused this request.</p><table>${rows}</table><p>Quote the request id when you contact your network team.</p></body></html>\n`;
  return {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-tollgate-request-id': requestId,
      'x-tollgate-reason': refusalCode(refusal),
      ...protocolHeaders(refusal),
    },
    body,
  };
}

/** Answers on a ServerResponse that has not sent its headers yet. */
/** Answers with the block page; returns the bytes of its body (what the record counts as sent). */
export function writeHttpRefusal(res: ServerResponse | Http2ServerResponse, refusal: Refusal, requestId: string, destination: string, extraHeaders: Record<string, string> = {}): number {
  const page = blockPage(refusal, requestId, destination);
  const length = Buffer.byteLength(page.body);
  res.writeHead(page.status, { ...page.headers, ...extraHeaders, 'content-length': length });
  res.end(page.body);
  return length;
}

/** Answers on a raw socket (CONNECT, or a request the HTTP parser rejected) and closes it. */
export function writeRawHttpRefusal(socket: Socket, refusal: Refusal, requestId: string, destination: string, extraHeaders: Record<string, string> = {}): void {
  if (socket.destroyed || !socket.writable) return;
  const page = blockPage(refusal, requestId, destination);
  const headers = { ...page.headers, ...extraHeaders, 'content-length': String(Buffer.byteLength(page.body)), connection: 'close' };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${page.status} ${STATUS_CODES[page.status] ?? ''}\r\n${head}\r\n${page.body}`);
}

/** The SOCKS reply (RFC 1928 section 6, or SOCKS4 CD) for a refused request. */
function socksRefusalReply(version: 4 | 5, refusal: Refusal): Buffer {
  return version === 5 ? encodeSocks5Reply(socks5ReplyOf(refusal)) : encodeSocks4Reply(socks4ReplyOf(refusal) as Socks4ReplyCode);
}

/** Answers a SOCKS request with its failure reply and closes (RFC 1928: close soon after). */
export function writeSocksRefusal(socket: Socket, version: 4 | 5, refusal: Refusal): void {
  if (socket.destroyed || !socket.writable) return;
  socket.end(socksRefusalReply(version, refusal));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * Refuses SOCKS5 authentication, which has its own messages: before a method is chosen, "no
 * acceptable methods" (0xFF, RFC 1928 section 3); after RFC 1929 credentials, status 0x01.
 * Both RFCs have the server close the connection next.
 */
export function writeSocks5AuthRefusal(socket: Socket, stage: 'method' | 'credentials'): void {
  if (socket.destroyed || !socket.writable) return;
  socket.end(stage === 'method' ? encodeSocks5MethodSelection(SOCKS5_METHOD.noAcceptableMethods) : encodeSocks5AuthStatus(false));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * Refuses a TLS client that has sent its ClientHello (transparent TLS): access_denied for
 * what policy or the destination guard forbids, internal_error when the origin could not be
 * reached, so the client's own error message points the right way.
 */
export function writeTlsRefusal(socket: Socket, refusal: Refusal): void {
  if (socket.destroyed || !socket.writable) return;
  socket.end(httpStatusOf(refusal) === 403 ? TLS_ALERT_ACCESS_DENIED : TLS_ALERT_INTERNAL_ERROR);
  setTimeout(() => socket.destroy(), 1000).unref();
}
