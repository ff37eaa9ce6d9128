import type CachePolicy from 'http-cache-semantics';
import { headerObject } from './request-view';
import type { StoredResponse } from './store';

/** Cache-Control directives and header shapes, as the cache reads them. */

export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

export function responseDirectives(entry: StoredResponse): Readonly<Record<string, string | boolean>> {
  return entry.policy.toObject().rescc as Record<string, string | boolean>;
}

/** RFC 9111 section 3.5: a shared cache serves a request carrying Authorization only from such responses. */
export function allowsAuthorized(entry: StoredResponse): boolean {
  return explicitlyShareable(responseDirectives(entry));
}

/**
 * Whether a response's own Cache-Control says a shared cache may keep it for everyone: the
 * directives RFC 9111 3.5 accepts for a request that carried Authorization. The cache holds a
 * response to a request with a Cookie to the same standard: a page fetched with one user's
 * session is personal unless the origin says otherwise, `private` or not.
 */
export function explicitlyShareable(cc: Readonly<Record<string, string | boolean>>): boolean {
  return cc['public'] !== undefined || cc['s-maxage'] !== undefined || cc['must-revalidate'] !== undefined;
}

/** `Cache-Control: only-if-cached` in a raw field list (for requests the cache takes no part in). */
export function asksOnlyIfCached(rawHeaders: readonly string[]): boolean {
  return requestDirective(headerObject(rawHeaders), 'only-if-cached');
}

/** Whether the request's Cache-Control carries a directive (RFC 9111 5.2.1), by name. */
export function requestDirective(headers: RequestHeaders, name: string): boolean {
  const value = headers['cache-control'];
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return text.split(',').some((d) => d.split('=', 1)[0]!.trim().toLowerCase() === name);
}

export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

export function toRawHeaders(headers: CachePolicy.Headers): string[] {
  const raw: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === 'content-length' || name === 'transfer-encoding') continue;
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else raw.push(name, value);
  }
  return raw;
}
