import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The fields docs/audit.md describes, per record type: the "Common fields" table applies to
 * connection and request records; each "`<type>` records" table to its type. Nested fields are
 * written `client_tls.version` (an object) and `dlp[].detector` (an array of objects).
 */
export function documentedFields(): Record<'connection' | 'request' | 'pinning' | 'udp_association', Set<string>> {
  const doc = readFileSync(path.resolve(__dirname, '../../../docs/audit.md'), 'utf8');
  const tables = new Map<string, string[]>();
  let section = '';
  for (const line of doc.split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading) section = heading[1]!;
    const row = /^\| `([a-z0-9_.[\]]+)` \| [^|]+ \| .+ \|$/.exec(line);
    if (row && section) tables.set(section, [...(tables.get(section) ?? []), row[1]!]);
  }
  const common = tables.get('Common fields') ?? [];
  return {
    connection: new Set([...common, ...(tables.get('`connection` records') ?? [])]),
    request: new Set([...common, ...(tables.get('`request` records') ?? [])]),
    pinning: new Set(tables.get('`pinning` records') ?? []),
    udp_association: new Set(tables.get('`udp_association` records') ?? []),
  };
}

/**
 * The fields a record carries, named as the document names them. Header maps are free-form
 * (their keys are header names), so they are one field each.
 */
export function recordFields(record: object): string[] {
  const out: string[] = [];
  const walk = (value: unknown, prefix: string): void => {
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const name = `${prefix}${key}`;
      out.push(name);
      if (key.endsWith('_headers')) continue;
      if (Array.isArray(child)) {
        for (const item of child) if (item !== null && typeof item === 'object') walk(item, `${name}[].`);
      } else if (child !== null && typeof child === 'object') walk(child, `${name}.`);
    }
  };
  walk(record, '');
  return [...new Set(out)];
}
