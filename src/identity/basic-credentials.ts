/**
 * `Proxy-Authorization: Basic <base64(user:password)>` (RFC 7617, RFC 9110 section 11.7.2),
 * parsed without I/O. The password may contain ':' (only the first one separates); the
 * user-id may not. Credentials are decoded as UTF-8, which is what curl and browsers send
 * when the challenge says charset="UTF-8".
 */

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

export type BasicParse = { readonly kind: 'none' } | { readonly kind: 'invalid'; readonly reason: string } | { readonly kind: 'ok'; readonly credentials: BasicCredentials };

/** Longer than any sane user:password; bounds the decode work for a hostile header. */
const MAX_TOKEN_LENGTH = 4096;

/** Parses the Proxy-Authorization header values of a request (rawHeaders form). */
export function parseProxyAuthorization(rawHeaders: readonly string[]): BasicParse {
  let value: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'proxy-authorization') continue;
    if (value !== null) return { kind: 'invalid', reason: 'more than one Proxy-Authorization header' };
    value = rawHeaders[i + 1]!;
  }
  if (value === null) return { kind: 'none' };
  return parseBasic(value);
}

export function parseBasic(value: string): BasicParse {
  const match = /^[ \t]*([A-Za-z]+)[ \t]+([A-Za-z0-9+/]+=*)[ \t]*$/.exec(value);
  if (!match) return { kind: 'invalid', reason: 'Proxy-Authorization is not "Basic <base64>"' };
  if (match[1]!.toLowerCase() !== 'basic') return { kind: 'invalid', reason: `unsupported authentication scheme "${match[1]!.slice(0, 20)}" (Basic only)` };
  const token = match[2]!;
  if (token.length > MAX_TOKEN_LENGTH) return { kind: 'invalid', reason: 'Basic credentials are too long' };
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { kind: 'invalid', reason: 'Basic credentials without a ":" between user and password' };
  // Control characters are never part of a valid name or password we issued.
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return { kind: 'invalid', reason: 'Basic credentials contain control characters' };
  return { kind: 'ok', credentials: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } };
}
