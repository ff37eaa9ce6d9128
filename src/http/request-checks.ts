import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors/gateway-error';
import { isSameHost } from '../protocol/host';
import { parseHostAndOptionalPort, type Target } from '../protocol/target';
import { countRawHeader, rawHeaderValue, withoutHopByHop } from './headers';
import type { InboundRequest } from './inbound';

/**
 * The checks and rewrites the HTTP entry (entry.ts) applies to requests before deciding on
 * them: pure functions of the request, so each can be tested without a socket.
 */

/** Splits an absolute-form request target (RFC 9112 3.2.2) into authority and origin-form path. */
export function splitAbsoluteForm(url: string): { scheme: string; authority: string; path: string } | null {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(url);
  if (!match) return null;
  const path = match[3] === '' ? '/' : match[3]!;
  return { scheme: match[1]!.toLowerCase(), authority: match[2]!, path: path.startsWith('?') ? `/${path}` : path };
}

/**
 * Refuses messages whose framing or target is ambiguous (request smuggling): Node's strict
 * parser already rejects Content-Length with Transfer-Encoding, differing Content-Lengths,
 * bad chunk sizes, obs-fold and bare CR; what it lets through is checked here.
 */
export function checkRequestFraming(req: InboundRequest): string | null {
  if (countRawHeader(req.rawHeaders, 'host') > 1) return 'more than one Host header';
  const te = rawHeaderValue(req.rawHeaders, 'transfer-encoding');
  if (te !== undefined && (countRawHeader(req.rawHeaders, 'transfer-encoding') > 1 || te.trim().toLowerCase() !== 'chunked')) {
    // Any coding but a lone "chunked" would be forwarded re-chunked without its other codings.
    return `unsupported Transfer-Encoding "${te}" (only "chunked" is accepted)`;
  }
  return null;
}

/** Host header, when present, must name the same host and port as the request target. */
export function checkHostAgreement(req: IncomingMessage, target: Target, defaultPort: number): string | null {
  const host = rawHeaderValue(req.rawHeaders, 'host');
  if (host === undefined) return null;
  const parsed = parseHostAndOptionalPort(host, defaultPort);
  if (!parsed.ok || !isSameHost(parsed.target.host, target.host) || parsed.target.port !== target.port) {
    return `the Host header "${host}" does not match the request target`;
  }
  return null;
}

/** Host, and for HTTP/2 :authority, as the client wrote them; :authority first. */
export function presentedAuthorities(req: InboundRequest): string[] {
  const out: string[] = [];
  const authority = req.headers[':authority'];
  if (typeof authority === 'string') out.push(authority);
  const host = req.headers.host;
  if (typeof host === 'string') out.push(host);
  return out;
}

/** Whether a request announces a body (one an unauthenticated client should not make us read). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

/** X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) as the gateway saw them, the client's removed. */
export function replaceForwardingFields(req: InboundRequest, seen: { client: string; proto: string; host: string }): void {
  const drop = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);
  const kept: string[] = [];
  // Hop-by-hop fields first, so the client's Connection header cannot name the fields added here.
  const endToEnd = withoutHopByHop(req.rawHeaders);
  for (let i = 0; i < endToEnd.length; i += 2) {
    if (!drop.has(endToEnd[i]!.toLowerCase())) kept.push(endToEnd[i]!, endToEnd[i + 1]!);
  }
  const node = seen.client.includes(':') ? `"[${seen.client}]"` : seen.client;
  const host = seen.host.replace(/["\\]/g, '');
  kept.push('X-Forwarded-For', seen.client, 'X-Forwarded-Proto', seen.proto, 'X-Forwarded-Host', host, 'Forwarded', `for=${node};proto=${seen.proto};host="${host}"`);
  // rawHeaders is a getter on HTTP/2 requests; an own property shadows it for both kinds.
  Object.defineProperty(req, 'rawHeaders', { value: kept, configurable: true, enumerable: true, writable: true });
}

export function badRequest(reason: string): GatewayError {
  return new GatewayError('TG_ERR_BAD_REQUEST', 'parse', reason);
}
