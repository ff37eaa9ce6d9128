/**
 * SOCKS wire formats, sans-io: each parser takes the bytes a front-end has buffered so far and
 * says whether they hold one complete message, need more bytes, or can never become a valid
 * message. Nothing here touches a socket, logs or throws.
 *
 * This module holds what SOCKS4 (socks4-codec.ts) and SOCKS5 (socks5-codec.ts) share: the
 * destination and parse-result types, the version bytes, and the reply and method codes that
 * errors/ maps refusals to.
 */

/** A destination as the client sent it. Ports are 1-65535 except where noted on the request. */
export type SocksTarget =
  /** Dotted quad. */
  | { readonly kind: 'ipv4'; readonly address: string; readonly port: number }
  /** RFC 5952 canonical text; IPv4-mapped addresses in the RFC 5952 section 5 form `::ffff:a.b.c.d`. */
  | { readonly kind: 'ipv6'; readonly address: string; readonly port: number }
  /** Printable ASCII without spaces, exactly as sent: not lower-cased, not validated as a DNS name. */
  | { readonly kind: 'domain'; readonly name: string; readonly port: number };

/**
 * Why bytes can never become a valid message, for the caller to pick its reply:
 * - `address-type`: a SOCKS5 request with an ATYP other than 1, 3 or 4. The rest of the request
 *   has no known length, so it cannot be parsed, but RFC 1928 section 6 gives it its own reply
 *   (0x08, address type not supported).
 * - `port-zero`: a CONNECT or BIND to port 0, which names no reachable service.
 * - `malformed`: everything else; the caller answers with a general failure and closes.
 *
 * This is an `invalid` result with an extra field rather than a separate kind, so that every
 * SOCKS result is still a `ParseResult` and a caller that only looks at `kind` fails closed.
 */
export type SocksInvalidCode = 'malformed' | 'address-type' | 'port-zero';

export interface SocksInvalid {
  readonly kind: 'invalid';
  readonly reason: string;
  readonly code: SocksInvalidCode;
}

/** `ParseResult<T>` (see parse-result.ts) whose `invalid` carries a `SocksInvalidCode`. */
export type SocksParseResult<T> = { readonly kind: 'parsed'; readonly value: T; readonly consumed: number } | { readonly kind: 'needMore' } | SocksInvalid;

/** SOCKS4 reply codes (CD of the reply). */
export const SOCKS4_REPLY = {
  granted: 0x5a,
  rejected: 0x5b,
  identdUnreachable: 0x5c,
  identdMismatch: 0x5d,
} as const;

export type Socks4ReplyCode = (typeof SOCKS4_REPLY)[keyof typeof SOCKS4_REPLY];

/** SOCKS5 authentication methods (RFC 1928 section 3). */
export const SOCKS5_METHOD = {
  noAuthentication: 0x00,
  gssapi: 0x01,
  usernamePassword: 0x02,
  noAcceptableMethods: 0xff,
} as const;

/** SOCKS5 reply codes, the REP field (RFC 1928 section 6). */
export const SOCKS5_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowedByRuleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export const SOCKS4_VERSION = 0x04;
export const SOCKS5_VERSION = 0x05;

/**
 * The version of a new connection's first message, from its first byte: SOCKS4 requests and
 * SOCKS5 greetings both start with their version number.
 */
export function detectSocksVersion(input: Buffer): 4 | 5 | 'needMore' | 'invalid' {
  const version = input[0];
  if (version === undefined) return 'needMore';
  if (version === SOCKS4_VERSION) return 4;
  if (version === SOCKS5_VERSION) return 5;
  return 'invalid';
}
