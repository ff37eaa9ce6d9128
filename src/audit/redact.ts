/**
 * Credentials never reach a log or the audit trail. Header values are replaced, not removed,
 * so a reader can still see that a request carried credentials.
 */

export const REDACTED = '[REDACTED]';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

export function isSecretHeader(lowerName: string): boolean {
  return SECRET_HEADERS.has(lowerName);
}

/** rawHeaders -> { lower-case name: value | values }, secrets redacted. */
export function redactedHeaders(rawHeaders: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = SECRET_HEADERS.has(name) ? REDACTED : rawHeaders[i + 1]!;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  }
  return out;
}

/**
 * Redacts the values of the named query parameters (lower-case names) in a request target,
 * leaving everything else byte-for-byte as the client sent it.
 */
export function redactQuery(target: string, secretParams: readonly string[]): string {
  if (secretParams.length === 0) return target;
  const q = target.indexOf('?');
  if (q < 0) return target;
  const hash = target.indexOf('#', q);
  const end = hash < 0 ? target.length : hash;
  const parts = target.slice(q + 1, end).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' ')).toLowerCase();
    } catch {
      name = rawName.toLowerCase();
    }
    return secretParams.includes(name) && eq >= 0 ? `${rawName}=${REDACTED}` : pair;
  });
  return `${target.slice(0, q + 1)}${parts.join('&')}${target.slice(end)}`;
}
