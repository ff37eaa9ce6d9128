import { hexDigitValue } from '../../protocol/percent-encoding';

/**
 * The path HTTP rules are matched against. Origins resolve a request path before they look it
 * up: they decode percent-encoded characters, remove `.` and `..` segments, merge repeated
 * slashes, and many (Tomcat, Spring, Jetty) drop `;parameters` from segments. A rule matched on
 * the path as the client wrote it is then dodged by another spelling of the same resource:
 * `/public/../admin/secret`, `/%61dmin/secret`, `//admin/secret`, `/./admin/secret`,
 * `/admin;x/secret` all reach `/admin/secret` at the origin.
 *
 * So rules see one canonical form (RFC 3986 section 6.2.2): percent-encoded unreserved
 * characters decoded, other encodings kept with upper-case hex, dot segments removed (5.2.4),
 * empty segments and `;parameters` dropped. Spellings whose meaning differs from origin to
 * origin are refused rather than guessed: an encoded slash or backslash (`%2F`, `%5C`, or a raw
 * `\`, a separator on some servers and data on others) unless the policy rule opts in, and
 * always a dot segment with parameters (`..;`), an encoded NUL, a malformed or non-UTF-8 percent-encoding, and a fragment (`#` is never
 * part of a request target, RFC 9112 section 3.2). The request is forwarded as the client wrote
 * it; only matching uses the canonical form. Pure: text in, path or reason out.
 */
export type CanonicalPath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

export interface CanonicalPathOptions {
  /** Keep `%2F`, `%5C` and `\` (as `%2F`/`%5C`, not separators) instead of refusing them. */
  readonly allowEncodedSlashes: boolean;
}

const HEX = '0123456789ABCDEF';

function isUnreserved(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
}

function encoded(byte: number): string {
  return `%${HEX[byte >> 4]!}${HEX[byte & 15]!}`;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function refuse(reason: string): CanonicalPath {
  return { ok: false, reason };
}

/** Decodes what may be decoded; null path = refused, with the reason. */
function decode(raw: string, options: CanonicalPathOptions): CanonicalPath {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x23) return refuse('a request target must not carry a fragment (#)');
    if (c === 0x5c) {
      if (!options.allowEncodedSlashes) return refuse('a backslash in the path is a separator on some servers and not on others');
      out += '%5C';
      continue;
    }
    if (c !== 0x25) {
      out += raw[i]!;
      continue;
    }
    // A run of percent-encoded bytes: decoded one by one, multi-byte UTF-8 kept whole.
    const bytes: number[] = [];
    while (i < raw.length && raw.charCodeAt(i) === 0x25) {
      const hi = hexDigitValue(raw.charCodeAt(i + 1));
      const lo = hexDigitValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return refuse(`malformed percent-encoding "${raw.slice(i, i + 3)}" in the path`);
      bytes.push((hi << 4) | lo);
      i += 3;
    }
    i--;
    for (let j = 0; j < bytes.length; j++) {
      const byte = bytes[j]!;
      if (byte === 0) return refuse('an encoded NUL (%00) in the path');
      if (byte === 0x2f || byte === 0x5c) {
        if (!options.allowEncodedSlashes) return refuse(`an encoded ${byte === 0x2f ? 'slash (%2F)' : 'backslash (%5C)'} in the path is a separator on some servers and not on others`);
        out += encoded(byte);
        continue;
      }
      if (byte < 0x80) {
        out += isUnreserved(byte) ? String.fromCharCode(byte) : encoded(byte);
        continue;
      }
      // Non-ASCII: must be valid UTF-8 (an overlong "%C0%AE" is a dot on lax decoders).
      let end = j;
      while (end < bytes.length && bytes[end]! >= 0x80) end++;
      try {
        UTF8.decode(Uint8Array.from(bytes.slice(j, end)));
      } catch {
        return refuse('a percent-encoded sequence in the path is not valid UTF-8');
      }
      for (let k = j; k < end; k++) out += encoded(bytes[k]!);
      j = end - 1;
    }
  }
  return { ok: true, path: out };
}

/** The canonical form of an origin-form path (no query); see the file comment. */
export function canonicalPath(raw: string, options: CanonicalPathOptions): CanonicalPath {
  if (raw === '*') return { ok: true, path: raw };
  if (!raw.startsWith('/')) return refuse('the request path must start with "/"');
  const decoded = decode(raw, options);
  if (!decoded.ok) return decoded;
  const segments = decoded.path.split('/');
  const kept: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < segments.length; i++) {
    const full = segments[i]!;
    const semi = full.indexOf(';');
    const segment = semi < 0 ? full : full.slice(0, semi);
    // `..;x` is a parent step to Tomcat and Jetty and a plain name to nginx, Node, Go and IIS:
    // whichever reading the rules took, an origin of the other kind could be reached around them.
    if (semi >= 0 && (segment === '.' || segment === '..')) return refuse(`a dot segment with parameters ("${full}") is a dot segment to some servers and a name to others`);
    const last = i === segments.length - 1;
    if (segment === '' || segment === '.') {
      trailingSlash = last;
      continue;
    }
    if (segment === '..') {
      kept.pop();
      trailingSlash = last;
      continue;
    }
    kept.push(segment);
    trailingSlash = false;
  }
  if (kept.length === 0) return { ok: true, path: '/' };
  return { ok: true, path: `/${kept.join('/')}${trailingSlash ? '/' : ''}` };
}
