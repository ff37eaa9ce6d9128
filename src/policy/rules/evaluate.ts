import { type CanonicalPathOptions, canonicalPath } from './path';
import type { HeaderEdits, HttpRule, RequestConditions, ResponseConditions, ValueCondition } from './rule-types';

/** What a request looks like to the rules; built once per request. */
export interface RequestFacts {
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  /** Raw query string without '?', or ''. */
  readonly query: string;
  readonly rawHeaders: readonly string[];
  /** From Content-Length; null for chunked or absent bodies (decided while streaming). */
  readonly contentLength: number | null;
}

export interface ResponseFacts {
  readonly status: number;
  /** Media type without parameters, lower case; '' when absent. */
  readonly contentType: string;
  readonly contentLength: number | null;
}

export type Verdict = { readonly action: 'allow' | 'deny'; readonly rule: HttpRule } | null;

/** A size limit that can only be decided while a body streams. */
export interface PendingLimit {
  readonly rule: HttpRule;
  readonly limit: number;
}

export interface RequestEvaluation {
  readonly verdict: Verdict;
  /** Ids of `log` rules that matched (report-only). */
  readonly logged: string[];
  readonly requestEdits: HeaderEdits[];
  readonly responseEdits: HeaderEdits[];
  /** Request-body size rules for bodies without Content-Length. */
  readonly pendingBody: PendingLimit[];
  /** Rules with response conditions whose request conditions matched, in order. */
  readonly responseRules: HttpRule[];
}

export interface ResponseEvaluation {
  readonly verdict: Verdict;
  readonly logged: string[];
  readonly responseEdits: HeaderEdits[];
  /** Response-size rules for bodies without Content-Length. */
  readonly pendingBody: PendingLimit[];
}

const NO_RULES: RequestEvaluation = Object.freeze({
  verdict: null,
  logged: [],
  requestEdits: [],
  responseEdits: [],
  pendingBody: [],
  responseRules: [],
});

function headerValues(rawHeaders: readonly string[], lowerName: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lowerName) values.push(rawHeaders[i + 1]!);
  return values;
}

function valueMatches(condition: ValueCondition, values: readonly string[]): boolean {
  if (condition.kind === 'present') return condition.present === values.length > 0;
  return values.some((v) => condition.match(v));
}

/**
 * The values of a query parameter as the frameworks behind origins read it, so that another
 * spelling of the same parameter cannot dodge a rule: pairs split on `&` and `;` (a separator
 * for some), names and values form-decoded (`%65xport`, `+`), names compared in any case
 * (ASP.NET), `name[]` or `name[key]` counted as `name` (PHP, Rails, Express's qs), and names
 * read as PHP reads them: leading spaces dropped, cut at a NUL.
 */
function queryValues(query: string, name: string): string[] {
  if (query === '') return [];
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (const pair of query.split(/[&;]/)) {
    if (pair === '') continue;
    for (const [key, value] of new URLSearchParams(pair)) {
      const nul = key.indexOf('\0');
      const lower = (nul < 0 ? key : key.slice(0, nul)).replace(/^ +/, '').toLowerCase();
      const bracket = lower.indexOf('[');
      if (lower === wanted || (bracket > 0 && lower.slice(0, bracket) === wanted)) values.push(value);
    }
  }
  return values;
}

/** Request conditions other than body size. */
function requestMatches(c: RequestConditions, facts: RequestFacts): boolean {
  if (c.methods && !c.methods.has(facts.method.toUpperCase())) return false;
  if (c.path && !c.path.match(facts.path)) return false;
  for (const [name, condition] of c.query) if (!valueMatches(condition, queryValues(facts.query, name))) return false;
  for (const [name, condition] of c.headers) if (!valueMatches(condition, headerValues(facts.rawHeaders, name))) return false;
  return true;
}

function responseMatches(c: ResponseConditions, facts: ResponseFacts): boolean {
  if (c.status && !c.status.some(([lo, hi]) => facts.status >= lo && facts.status <= hi)) return false;
  if (c.contentTypes && !c.contentTypes.some((t) => t.match(facts.contentType))) return false;
  return true;
}

/**
 * A size condition (`body_larger_than`, `larger_than`): decided now from Content-Length, or,
 * without one, deferred to the streaming count (the rule is then pending, not applied now).
 */
function sizeConditionHolds(rule: HttpRule, limit: number | null, contentLength: number | null, pending: PendingLimit[]): boolean {
  if (limit === null) return true;
  if (contentLength === null) {
    pending.push({ rule, limit });
    return false;
  }
  return contentLength > limit;
}

/** Applies a matched rule's action to the running evaluation; true when evaluation ends. */
function apply(rule: HttpRule, state: { verdict: Verdict; logged: string[]; requestEdits: HeaderEdits[]; responseEdits: HeaderEdits[] }): boolean {
  switch (rule.action) {
    case 'allow':
    case 'deny':
      state.verdict = { action: rule.action, rule };
      return true;
    case 'log':
      state.logged.push(rule.id);
      return false;
    case 'strip_header':
    case 'set_header':
      if (rule.requestEdits) state.requestEdits.push(rule.requestEdits);
      if (rule.responseEdits) state.responseEdits.push(rule.responseEdits);
      return false;
  }
}

/** The request phase: see types.ts for the order. Pure. */
export function evaluateRequest(rules: readonly HttpRule[], facts: RequestFacts): RequestEvaluation {
  if (rules.length === 0) return NO_RULES;
  const state = { verdict: null as Verdict, logged: [] as string[], requestEdits: [] as HeaderEdits[], responseEdits: [] as HeaderEdits[] };
  const pendingBody: PendingLimit[] = [];
  const responseRules: HttpRule[] = [];
  for (const rule of rules) {
    if (rule.request && !requestMatches(rule.request, facts)) continue;
    if (rule.response) {
      responseRules.push(rule);
      continue;
    }
    if (!sizeConditionHolds(rule, rule.request?.bodyLargerThan ?? null, facts.contentLength, pendingBody)) continue;
    if (apply(rule, state)) break;
  }
  return { ...state, pendingBody, responseRules };
}

/** The response phase, over the rules the request phase deferred. Pure. */
export function evaluateResponse(rules: readonly HttpRule[], facts: ResponseFacts): ResponseEvaluation {
  const state = { verdict: null as Verdict, logged: [] as string[], requestEdits: [] as HeaderEdits[], responseEdits: [] as HeaderEdits[] };
  const pendingBody: PendingLimit[] = [];
  for (const rule of rules) {
    if (!responseMatches(rule.response!, facts)) continue;
    if (!sizeConditionHolds(rule, rule.response!.largerThan, facts.contentLength, pendingBody)) continue;
    if (apply(rule, state)) break;
  }
  return { verdict: state.verdict, logged: state.logged, responseEdits: state.responseEdits, pendingBody };
}

/** Applies header edits to a flat raw header list, returning a new list. */
export function applyHeaderEdits(rawHeaders: readonly string[], edits: readonly HeaderEdits[]): string[] {
  if (edits.length === 0) return rawHeaders as string[];
  const remove = new Set<string>();
  const add: [string, string][] = [];
  for (const edit of edits) {
    for (const name of edit.strip) remove.add(name);
    for (const [name, value] of edit.set) {
      remove.add(name.toLowerCase());
      add.push([name, value]);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (!remove.has(rawHeaders[i]!.toLowerCase())) out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  for (const [name, value] of add) out.push(name, value);
  return out;
}

/** The request's facts for the rules; `path` is the canonical path (rules/path.ts), without the query. */
export function requestFacts(method: string, path: string, query: string, rawHeaders: readonly string[], contentLength: number | null): RequestFacts {
  return { method, path, query, rawHeaders, contentLength };
}

/**
 * Splits an origin-form request target into the canonical path the rules match and the raw
 * query; a reason instead when the path's spelling is ambiguous (see rules/path.ts).
 */
export function ruleTarget(url: string, options: CanonicalPathOptions): { readonly ok: true; readonly path: string; readonly query: string } | { readonly ok: false; readonly reason: string } {
  const q = url.indexOf('?');
  const canonical = canonicalPath(q < 0 ? url : url.slice(0, q), options);
  if (!canonical.ok) return canonical;
  return { ok: true, path: canonical.path, query: q < 0 ? '' : url.slice(q + 1) };
}

/** Content-Length as a number, or null when absent or not a single valid value. */
export function contentLengthOf(value: string | undefined): number | null {
  if (value === undefined || !/^[0-9]{1,15}$/.test(value.trim())) return null;
  return Number(value.trim());
}

/** Media type without parameters, lower case. */
export function mediaTypeOf(value: string | undefined): string {
  if (!value) return '';
  const semi = value.indexOf(';');
  return (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
}
