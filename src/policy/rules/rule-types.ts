import type { GlobMatcher } from './glob';

/**
 * HTTP rules: per destination (inside a policy rule's `http:` list), evaluated for every request
 * the gateway can see — inspected HTTPS and plain HTTP.
 *
 * Order (documented in the README): rules are tried in the order written. `allow` and `deny`
 * end evaluation for the request; `log`, `strip_header` and `set_header` apply and evaluation
 * continues. A rule with only request conditions is decided when the request headers arrive;
 * a rule with response conditions when the response headers arrive (its request conditions must
 * have matched). Size conditions on bodies without a Content-Length are decided as the body
 * streams, when it crosses the limit.
 */
export type HttpRuleAction = 'allow' | 'deny' | 'log' | 'strip_header' | 'set_header';

export type ValueCondition = { readonly kind: 'present'; readonly present: boolean } | { readonly kind: 'glob'; readonly text: string; readonly match: GlobMatcher };

export interface RequestConditions {
  readonly methods: ReadonlySet<string> | null;
  /** Matched against the canonical path (rules/path.ts), never the path as written. */
  readonly path: { readonly text: string; readonly ignoreCase: boolean; readonly match: GlobMatcher } | null;
  readonly query: readonly (readonly [string, ValueCondition])[];
  /** Lower-case header names. */
  readonly headers: readonly (readonly [string, ValueCondition])[];
  readonly bodyLargerThan: number | null;
}

export interface ResponseConditions {
  readonly status: readonly (readonly [number, number])[] | null;
  readonly contentTypes: readonly { readonly text: string; readonly match: GlobMatcher }[] | null;
  readonly largerThan: number | null;
}

export interface HeaderEdits {
  /** Lower-case names to remove. */
  readonly strip: readonly string[];
  /** Fields to set (replacing any existing ones of the same name). */
  readonly set: readonly (readonly [string, string])[];
}

export interface HttpRule {
  /** `name`, else `<policy rule id>/http[<index>]`. */
  readonly id: string;
  readonly action: HttpRuleAction;
  readonly reason: string | null;
  readonly request: RequestConditions | null;
  readonly response: ResponseConditions | null;
  readonly requestEdits: HeaderEdits | null;
  readonly responseEdits: HeaderEdits | null;
}
