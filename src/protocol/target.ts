import { type Host, hostAuthorityText, normaliseHost } from './host';

export interface Target {
  readonly host: Host;
  readonly port: number;
}

export type TargetResult = { readonly ok: true; readonly target: Target } | { readonly ok: false; readonly reason: string };

const PORT = /^[0-9]{1,5}$/;
// RFC 3986 authority characters a CONNECT target may carry. Userinfo ("@") is refused: RFC 9110
// section 9.3.6 allows only host and port in the CONNECT request target.
const AUTHORITY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%\u0080-\uffff]+$/;

function fail(reason: string): TargetResult {
  return { ok: false, reason };
}

function parsePort(text: string): number | null {
  if (!PORT.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

function splitHostPort(authority: string): { host: string; port: string | null } | null {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return null;
    const rest = authority.slice(close + 1);
    if (rest === '') return { host: authority.slice(0, close + 1), port: null };
    if (!rest.startsWith(':')) return null;
    return { host: authority.slice(0, close + 1), port: rest.slice(1) };
  }
  const colon = authority.lastIndexOf(':');
  if (colon < 0) return { host: authority, port: null };
  // More than one colon without brackets is an IPv6 address the client forgot to bracket; the
  // port would be ambiguous, so it is refused rather than guessed.
  if (authority.indexOf(':') !== colon) return null;
  return { host: authority.slice(0, colon), port: authority.slice(colon + 1) };
}

/**
 * Parses a CONNECT request target (RFC 9110 section 9.3.6): `host:port` or `[v6]:port`, the
 * port mandatory. Bytes in, target or reason out; no I/O.
 */
export function parseConnectAuthority(authority: string): TargetResult {
  if (authority.length === 0) return fail('empty CONNECT target');
  if (!AUTHORITY_CHARS.test(authority)) return fail('CONNECT target has characters not allowed in an authority');
  if (authority.includes('@')) return fail('CONNECT target must not carry user information');
  const parts = splitHostPort(authority);
  if (!parts) return fail('CONNECT target is not host:port (bracket IPv6 addresses: [2001:db8::1]:443)');
  if (parts.port === null || parts.port === '') return fail('CONNECT target has no port (expected host:port)');
  const port = parsePort(parts.port);
  if (port === null) return fail(`CONNECT target port "${parts.port}" is not a number from 1 to 65535`);
  const host = normaliseHost(parts.host);
  if (!host.ok) return fail(host.reason);
  return { ok: true, target: { host: host.host, port } };
}

/**
 * Parses a `Host` header value or an absolute URI's authority, where the port is optional and
 * defaults to the scheme's.
 */
export function parseHostAndOptionalPort(value: string, defaultPort: number): TargetResult {
  if (value.length === 0) return fail('empty host');
  if (!AUTHORITY_CHARS.test(value)) return fail('host has characters not allowed in an authority');
  if (value.includes('@')) return fail('host must not carry user information');
  const parts = splitHostPort(value);
  if (!parts) return fail(`"${value}" is not host[:port]`);
  let port = defaultPort;
  if (parts.port !== null) {
    // RFC 3986 allows an empty port ("host:"), which means the default.
    if (parts.port !== '') {
      const parsedPort = parsePort(parts.port);
      if (parsedPort === null) return fail(`port "${parts.port}" is not a number from 1 to 65535`);
      port = parsedPort;
    }
  }
  const host = normaliseHost(parts.host);
  if (!host.ok) return fail(host.reason);
  return { ok: true, target: { host: host.host, port } };
}

export function targetText(target: Target): string {
  return `${hostAuthorityText(target.host)}:${target.port}`;
}
