import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * One naming scheme for the operational log and the audit (docs/audit.md): every key of a
 * structured log call is snake_case, as audit fields are, so a filter written for one reads the
 * other (`flow_id`, `request_id`, `not_after`, never `flowId` or `notAfter`). This reads every
 * object literal passed as the first argument of a logger call in src/ and names the offenders.
 */
const SRC = path.resolve(__dirname, '../../src');
const LOG_CALL = /\b(?:logger|log)\.(?:trace|debug|info|warn|error|fatal)\(\s*\{([^{}]*)\}/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') && !full.endsWith('.test.ts') ? [full] : [];
  });
}

/** The keys of an object literal's body: `a, b: x, c: f(y, z), ...rest` → a, b, c. */
function literalKeys(body: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let start = 0;
  const take = (end: number): void => {
    const part = body.slice(start, end).trim();
    if (part && !part.startsWith('...')) keys.push(part.split(/[:\s]/, 1)[0]!);
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      take(i);
      start = i + 1;
    }
  }
  take(body.length);
  return keys;
}

function offendingKeys(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(LOG_CALL)) for (const key of literalKeys(match[1]!)) if (/[A-Z]/.test(key)) found.push(key);
  return found;
}

describe('operational log keys', () => {
  test('every key of a structured log call in src/ is snake_case', () => {
    const offenders = sourceFiles(SRC).flatMap((file) => offendingKeys(readFileSync(file, 'utf8')).map((key) => `${path.relative(SRC, file)}: ${key}`));
    expect(offenders).toEqual([]);
  });

  test('the check sees what it must: camelCase keys, shorthand and nested calls', () => {
    expect(offendingKeys("this.logger.warn({ certPath: where, not_after: x.toISOString() }, 'm')")).toEqual(['certPath']);
    expect(offendingKeys("logger.info({ flowId, reason: f(a, b), keyType }, 'm')")).toEqual(['flowId', 'keyType']);
    expect(offendingKeys("log.debug({ flow_id: id, ...rest }, 'm')")).toEqual([]);
  });
});
