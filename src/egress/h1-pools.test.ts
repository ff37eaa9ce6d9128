import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UNDICI_MODULES } from './h1-pools';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [full] : [];
  });
}

describe('undici is loaded by module, never by its index', () => {
  test("the Client and Pool modules are the classes undici's index exports", () => {
    // undici's index is loaded here only to compare: the gateway itself never loads it.
    const undici = require('undici') as typeof import('undici');
    expect(require(UNDICI_MODULES.client)).toBe(undici.Client);
    expect(require(UNDICI_MODULES.pool)).toBe(undici.Pool);
  });

  test("no source file loads undici's index at run time (type imports are free)", () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(path.resolve(__dirname, '..'))) {
      const text = readFileSync(file, 'utf8');
      const valueImport = /^\s*import\s+(?!type\s)[^;]*?from\s+'undici'/m.test(text);
      const required = /require\(\s*'undici'\s*\)/.test(text);
      if (valueImport || required) offenders.push(path.relative(path.resolve(__dirname, '..'), file));
    }
    expect(offenders).toEqual([]);
    // The check itself sees a value import.
    expect(/^\s*import\s+(?!type\s)[^;]*?from\s+'undici'/m.test("import { Pool } from 'undici';")).toBe(true);
    expect(/^\s*import\s+(?!type\s)[^;]*?from\s+'undici'/m.test("import type { Dispatcher } from 'undici';")).toBe(false);
  });
});
