/**
 * The result of a sans-io parser: bytes in, one of three outcomes out. Parsers never throw on
 * input and never touch a socket; the caller decides what to do with `needMore` (read more,
 * within its own byte and time bounds) and `invalid` (refuse, with `reason` in the log line).
 */
export type ParseResult<T> = { readonly kind: 'parsed'; readonly value: T; readonly consumed: number } | { readonly kind: 'needMore' } | { readonly kind: 'invalid'; readonly reason: string };

/** The `invalid` outcome on its own, for checks that can only fail or pass. */
export type Invalid = { readonly kind: 'invalid'; readonly reason: string };

export const NEED_MORE: { readonly kind: 'needMore' } = Object.freeze({ kind: 'needMore' });

export function parsed<T>(value: T, consumed: number): ParseResult<T> {
  return { kind: 'parsed', value, consumed };
}

export function invalid(reason: string): Invalid {
  return { kind: 'invalid', reason };
}
