/**
 * Credentials never reach a log or the audit trail. Values are replaced, not removed, so a
 * reader can still see that a request carried credentials.
 */

export const REDACTED = '[REDACTED]';

/** Always redacted, whatever the configuration says: they carry credentials by definition. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'] as const;

/**
 * What `audit.redact_headers` lists when the configuration leaves it out: API keys and tokens
 * that services carry in headers of their own.
 */
export const DEFAULT_REDACTED_HEADERS: readonly string[] = [
  'x-api-key',
  'api-key',
  'apikey',
  'x-auth-token',
  'x-access-token',
  'x-refresh-token',
  'x-csrf-token',
  'x-xsrf-token',
  'x-goog-api-key',
  'x-amz-security-token',
  'private-token',
  'x-vault-token',
  'x-session-token',
];

/** Header fields whose value is a URL: its query, parameters and userinfo are redacted too. */
const URL_HEADERS = new Set(['referer', 'location', 'content-location', 'origin']);

export interface RedactionOptions {
  /** Lower-case header names redacted besides the credential headers. */
  readonly headers: readonly string[];
  /** Lower-case query (and `;`-parameter) names whose values are redacted. */
  readonly queryParams: readonly string[];
}

/**
 * Applies the configured redaction to what the gateway records: header fields (by name, and
 * URL-valued fields such as Referer and Location by their query parameters), request targets
 * (userinfo, query parameters and `;`-parameters in path segments), and authorities.
 */
export class Redactor {
  private readonly headers: ReadonlySet<string>;
  private readonly params: ReadonlySet<string>;

  constructor(options: RedactionOptions) {
    this.headers = new Set([...CREDENTIAL_HEADERS, ...options.headers.map((h) => h.toLowerCase())]);
    this.params = new Set(options.queryParams.map((p) => p.toLowerCase()));
  }

  isRedactedHeader(lowerName: string): boolean {
    return this.headers.has(lowerName);
  }

  /** rawHeaders -> { lower-case name: value | values }, secrets redacted. */
  headerObject(rawHeaders: readonly string[]): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toLowerCase();
      const raw = rawHeaders[i + 1]!;
      const value = this.headers.has(name) ? REDACTED : URL_HEADERS.has(name) ? this.target(raw) : raw;
      const existing = out[name];
      if (existing === undefined) out[name] = value;
      else if (Array.isArray(existing)) existing.push(value);
      else out[name] = [existing, value];
    }
    return out;
  }

  /**
   * A request target or URL as recorded: userinfo replaced (`http://[REDACTED]@host/`), the
   * values of configured parameters replaced in the query and in `;`-parameters of path
   * segments; everything else byte for byte as the client sent it.
   */
  target(target: string): string {
    let out = redactUserinfo(target);
    if (this.params.size === 0) return out;
    const q = out.indexOf('?');
    const hash = out.indexOf('#', Math.max(q, 0));
    const pathEnd = q >= 0 ? q : hash >= 0 ? hash : out.length;
    const path = out.slice(0, pathEnd);
    if (path.includes(';')) out = this.pathParams(path) + out.slice(pathEnd);
    if (q < 0) return out;
    const qq = out.indexOf('?');
    const end = out.indexOf('#', qq) < 0 ? out.length : out.indexOf('#', qq);
    const parts = out
      .slice(qq + 1, end)
      .split('&')
      .map((pair) => this.pair(pair, '='));
    return `${out.slice(0, qq + 1)}${parts.join('&')}${out.slice(end)}`;
  }

  /** An authority as a client wrote it (CONNECT target, absolute-form), userinfo redacted. */
  authority(authority: string): string {
    const at = authority.lastIndexOf('@');
    return at < 0 ? authority : `${REDACTED}@${authority.slice(at + 1)}`;
  }

  private pathParams(path: string): string {
    return path
      .split('/')
      .map((segment) => {
        const semi = segment.indexOf(';');
        if (semi < 0) return segment;
        return `${segment.slice(0, semi)};${segment
          .slice(semi + 1)
          .split(';')
          .map((p) => this.pair(p, '='))
          .join(';')}`;
      })
      .join('/');
  }

  private pair(pair: string, separator: string): string {
    const eq = pair.indexOf(separator);
    if (eq < 0) return pair;
    const rawName = pair.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' ')).toLowerCase();
    } catch {
      name = rawName.toLowerCase();
    }
    return this.params.has(name) ? `${rawName}=${REDACTED}` : pair;
  }
}

/** `scheme://user:pass@host/...` -> `scheme://[REDACTED]@host/...`; anything else unchanged. */
function redactUserinfo(target: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(target);
  if (!scheme) return target;
  const start = scheme[0].length;
  let end = target.length;
  for (const stop of ['/', '?', '#']) {
    const at = target.indexOf(stop, start);
    if (at >= 0 && at < end) end = at;
  }
  const at = target.lastIndexOf('@', end - 1);
  if (at < start) return target;
  return `${target.slice(0, start)}${REDACTED}${target.slice(at)}`;
}
