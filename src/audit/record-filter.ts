/**
 * A small filter language over audit records, shared by `tollgate tail --filter` and the flow
 * view (/flows): terms separated by spaces, all of which must hold.
 *
 *   action=deny                 a field equals a value (case-insensitive; * is a wildcard)
 *   action=deny,splice          one of several values
 *   user!=alice                 does not equal
 *   status>=400  status<500     numeric comparisons: < <= > >=
 *   status=4xx                  x stands for any digit
 *   name=*.example.com          `name` matches the destination: host, target, sni or authority
 *
 * Fields are audit field names (docs/audit.md); a field a record does not have never equals
 * anything (so `status>=400` keeps request records only) and always differs (`!=`).
 */

export class FilterError extends Error {
  override readonly name = 'FilterError';
}

type Op = '=' | '!=' | '<' | '<=' | '>' | '>=';

/** Scalar and list fields that can be filtered on, and `name`. */
export const FILTER_FIELDS: readonly string[] = [
  'name',
  'type',
  'flow_id',
  'request_id',
  'frontend',
  'client',
  'client_port',
  'user',
  'action',
  'rule',
  'http_rule',
  'decision_code',
  'reason',
  'policy_version',
  'target',
  'sni',
  'host',
  'port',
  'authority',
  'method',
  'path',
  'scheme',
  'http_version',
  'status',
  'cache',
  'close',
  'error',
  'first_bytes',
  'upstream_address',
  'bytes_from_client',
  'bytes_to_client',
  'duration_ms',
  'requests',
  'flagged_by',
];

const FIELDS = new Set(FILTER_FIELDS);
/** Numeric fields, where `x` in a value stands for a digit (`status=4xx`). */
const NUMERIC = new Set(['status', 'port', 'client_port', 'bytes_from_client', 'bytes_to_client', 'duration_ms', 'requests']);
const TERM = /^([a-z_]+)(!=|<=|>=|=|<|>)(.*)$/;

export type RecordPredicate = (record: Readonly<Record<string, unknown>>) => boolean;

function globRegex(value: string, numeric: boolean): RegExp {
  let source = '';
  for (const c of value) {
    if (c === '*') source += '.*';
    else if (numeric && (c === 'x' || c === 'X')) source += '[0-9]';
    else source += c.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'i');
}

/** The values a field has in a record: `name` has several, lists have theirs, missing has none. */
function valuesOf(record: Readonly<Record<string, unknown>>, field: string): unknown[] {
  if (field === 'name') {
    const target = typeof record.target === 'string' ? record.target.replace(/^\[?(.*?)\]?:\d+$/, '$1') : undefined;
    return [record.host, target, record.sni, record.authority, record.name].filter((v) => typeof v === 'string' && v !== '');
  }
  const value = record[field];
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function compileTerm(term: string): RecordPredicate {
  const match = TERM.exec(term);
  if (!match) throw new FilterError(`"${term}": expected FIELD=VALUE, FIELD!=VALUE or FIELD<NUMBER (also <=, >, >=)`);
  const [, field, op, value] = match as unknown as [string, string, Op, string];
  if (!FIELDS.has(field)) throw new FilterError(`"${term}": unknown field ${field} (fields: ${FILTER_FIELDS.join(', ')})`);
  if (value === '') throw new FilterError(`"${term}": no value after ${op}`);
  if (op === '=' || op === '!=') {
    const patterns = value.split(',').map((v) => globRegex(v, NUMERIC.has(field)));
    const equals = (record: Readonly<Record<string, unknown>>): boolean => valuesOf(record, field).some((v) => patterns.some((p) => p.test(String(v))));
    return op === '=' ? equals : (record) => !equals(record);
  }
  const limit = Number(value);
  if (!Number.isFinite(limit)) throw new FilterError(`"${term}": ${op} compares numbers, not "${value}"`);
  const holds: Record<Exclude<Op, '=' | '!='>, (a: number) => boolean> = { '<': (a) => a < limit, '<=': (a) => a <= limit, '>': (a) => a > limit, '>=': (a) => a >= limit };
  const test = holds[op as Exclude<Op, '=' | '!='>];
  return (record) => valuesOf(record, field).some((v) => typeof v === 'number' && test(v));
}

/** Compiles a filter expression; an empty one keeps everything. Throws FilterError naming the bad term. */
export function compileFilter(expression: string): RecordPredicate {
  const terms = expression.trim().split(/\s+/).filter(Boolean).map(compileTerm);
  return (record) => terms.every((t) => t(record));
}
