import { z } from 'zod';
import { section, size } from '../../sources/fields';
import { compileGlob, type GlobMatcher } from './glob';
import type { HeaderEdits, HttpRule, HttpRuleAction, RequestConditions, ResponseConditions, ValueCondition } from './rule-types';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_NAME = z.string().regex(TOKEN, { error: 'expected a header name (an HTTP token such as X-Request-Id)' });

/** Fields a rule may not set or strip: they carry framing or routing the gateway owns. */
const PROTECTED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'via']);

const valueCondition = z.union([z.boolean(), z.string()], {
  error: 'expected true (present), false (absent) or a glob for the value such as "curl/*"',
});

const STATUS_HINT = 'expected a status code (404) or a range ("500-599")';
const statusEntry = z.union(
  [
    z.number({ error: STATUS_HINT }).int({ error: STATUS_HINT }).min(100, { error: STATUS_HINT }).max(599, { error: STATUS_HINT }),
    z.string({ error: STATUS_HINT }).regex(/^[1-5][0-9]{2}-[1-5][0-9]{2}$/, { error: STATUS_HINT }),
  ],
  { error: STATUS_HINT },
);

const edits = section({
  request: z.unknown().optional(),
  response: z.unknown().optional(),
});

export const httpRuleSchema = section({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, { error: 'expected a short identifier' })
    .optional(),
  request: section({
    method: z
      .array(z.string().regex(TOKEN, { error: 'expected an HTTP method such as POST' }))
      .min(1)
      .optional(),
    path: z.string().startsWith('/', { error: 'a path glob starts with "/", e.g. "/api/**"' }).optional(),
    path_ignore_case: z.boolean({ error: 'expected true or false' }).optional(),
    query: z.record(z.string(), valueCondition).optional(),
    headers: z.record(HEADER_NAME, valueCondition).optional(),
    body_larger_than: size().optional(),
  }).optional(),
  response: section({
    status: z.array(statusEntry).min(1).optional(),
    content_type: z.array(z.string().min(1)).min(1).optional(),
    larger_than: size().optional(),
  }).optional(),
  action: z.enum(['allow', 'deny', 'log', 'strip_header', 'set_header'], {
    error: 'expected one of: allow, deny, log, strip_header, set_header',
  }),
  reason: z.string().max(500).optional(),
  strip_headers: edits.optional(),
  set_headers: edits.optional(),
});

export type RawHttpRule = z.output<typeof httpRuleSchema>;

export interface HttpRuleProblem {
  /** Key path below the http rule, e.g. ['set_headers', 'request']. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

function valueConditionOf(raw: boolean | string, caseInsensitive: boolean): ValueCondition {
  return typeof raw === 'boolean' ? { kind: 'present', present: raw } : { kind: 'glob', text: raw, match: compileGlob(raw, { caseInsensitive }) };
}

/**
 * A path glob; one ending in `/**` also matches the directory itself (`/admin/**` covers
 * `/admin`), which is what people mean by it and what the origin serves at that path.
 */
function compilePathGlob(glob: string, caseInsensitive: boolean): GlobMatcher {
  const below = compileGlob(glob, { caseInsensitive });
  if (!glob.endsWith('/**') || glob.length <= 3) return below;
  const itself = compileGlob(glob.slice(0, -3), { caseInsensitive });
  return (path) => below(path) || itself(path);
}

function compileRequest(raw: NonNullable<RawHttpRule['request']>): RequestConditions {
  return {
    methods: raw.method ? new Set(raw.method.map((m) => m.toUpperCase())) : null,
    path: raw.path ? { text: raw.path, ignoreCase: raw.path_ignore_case === true, match: compilePathGlob(raw.path, raw.path_ignore_case === true) } : null,
    query: Object.entries(raw.query ?? {}).map(([name, v]) => [name, valueConditionOf(v, false)] as const),
    headers: Object.entries(raw.headers ?? {}).map(([name, v]) => [name.toLowerCase(), valueConditionOf(v, false)] as const),
    bodyLargerThan: raw.body_larger_than ?? null,
  };
}

function compileResponse(raw: NonNullable<RawHttpRule['response']>): ResponseConditions {
  return {
    status: raw.status
      ? raw.status.map((s) => {
          if (typeof s === 'number') return [s, s] as const;
          const [lo, hi] = s.split('-').map(Number) as [number, number];
          return [lo, hi] as const;
        })
      : null,
    contentTypes: raw.content_type ? raw.content_type.map((t) => ({ text: t, match: compileGlob(t.toLowerCase(), { caseInsensitive: true }) })) : null,
    largerThan: raw.larger_than ?? null,
  };
}

function compileEdits(kind: 'strip' | 'set', side: 'request' | 'response', value: unknown, problems: HttpRuleProblem[]): HeaderEdits | null {
  if (value === undefined) return null;
  const key = kind === 'strip' ? 'strip_headers' : 'set_headers';
  const names: string[] = kind === 'strip' ? (Array.isArray(value) ? value.map(String) : []) : value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
  if (kind === 'strip' && !Array.isArray(value)) {
    problems.push({ path: [key, side], message: 'expected a list of header names, e.g. [X-Client-Data]' });
    return null;
  }
  if (kind === 'set' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    problems.push({ path: [key, side], message: 'expected a mapping of header name to value, e.g. { X-Tenant: acme }' });
    return null;
  }
  for (const name of names) {
    if (!TOKEN.test(name)) problems.push({ path: [key, side], message: `"${name}" is not a header name` });
    else if (PROTECTED_HEADERS.has(name.toLowerCase())) problems.push({ path: [key, side], message: `"${name}" is managed by the gateway and cannot be changed by a rule` });
  }
  if (kind === 'strip') return { strip: names.map((n) => n.toLowerCase()), set: [] };
  const set: [string, string][] = [];
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string' || /[\r\n\0]/.test(v)) problems.push({ path: [key, side, name], message: 'expected a header value without control characters' });
    else set.push([name, v]);
  }
  return { strip: [], set };
}

function needsEdits(action: HttpRuleAction, raw: RawHttpRule, problems: HttpRuleProblem[]): void {
  if (action === 'strip_header' && !raw.strip_headers) problems.push({ path: ['strip_headers'], message: 'strip_header needs strip_headers: { request: [...], response: [...] }' });
  if (action === 'set_header' && !raw.set_headers) problems.push({ path: ['set_headers'], message: 'set_header needs set_headers: { request: {...}, response: {...} }' });
  if (action !== 'strip_header' && raw.strip_headers) problems.push({ path: ['strip_headers'], message: 'strip_headers only goes with action: strip_header' });
  if (action !== 'set_header' && raw.set_headers) problems.push({ path: ['set_headers'], message: 'set_headers only goes with action: set_header' });
}

/** Compiles one validated rule; problems are located below the rule. */
export function compileHttpRule(raw: RawHttpRule, defaultId: string, problems: HttpRuleProblem[]): HttpRule {
  needsEdits(raw.action, raw, problems);
  // A body without Content-Length is measured while it streams, after its headers have gone:
  // too late to edit them, so size conditions only go with actions that need no headers.
  if ((raw.action === 'strip_header' || raw.action === 'set_header') && (raw.request?.body_larger_than !== undefined || raw.response?.larger_than !== undefined)) {
    problems.push({ path: ['action'], message: 'size conditions (body_larger_than, larger_than) go with allow, deny or log, not with header edits' });
  }
  const editsOf = (side: 'request' | 'response'): HeaderEdits | null => {
    if (raw.action === 'strip_header') return compileEdits('strip', side, raw.strip_headers?.[side], problems);
    if (raw.action === 'set_header') return compileEdits('set', side, raw.set_headers?.[side], problems);
    return null;
  };
  return Object.freeze({
    id: raw.name ?? defaultId,
    action: raw.action,
    reason: raw.reason ?? null,
    request: raw.request ? compileRequest(raw.request) : null,
    response: raw.response ? compileResponse(raw.response) : null,
    requestEdits: editsOf('request'),
    responseEdits: editsOf('response'),
  });
}

/** One line per rule for `tollgate check`. */
export function describeHttpRule(rule: HttpRule): string {
  const parts: string[] = [];
  const r = rule.request;
  if (r?.methods) parts.push(`method ${[...r.methods].join('|')}`);
  if (r?.path) parts.push(`path ${r.path.text}${r.path.ignoreCase ? ' (any case)' : ''}`);
  for (const [name, c] of r?.query ?? []) parts.push(c.kind === 'present' ? `query ${name} ${c.present ? 'present' : 'absent'}` : `query ${name}=${c.text}`);
  for (const [name, c] of r?.headers ?? []) parts.push(c.kind === 'present' ? `header ${name} ${c.present ? 'present' : 'absent'}` : `header ${name}: ${c.text}`);
  if (r?.bodyLargerThan != null) parts.push(`request body > ${r.bodyLargerThan} B`);
  const s = rule.response;
  if (s?.status) parts.push(`status ${s.status.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',')}`);
  if (s?.contentTypes) parts.push(`content-type ${s.contentTypes.map((c) => c.text).join('|')}`);
  if (s?.largerThan != null) parts.push(`response > ${s.largerThan} B`);
  const when = parts.length > 0 ? parts.join(', ') : 'every request';
  return `${rule.action.padEnd(12)} ${rule.id}: ${when}${rule.reason ? ` (${rule.reason})` : ''}`;
}
