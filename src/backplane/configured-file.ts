import { readFileSync } from 'node:fs';
import { ConfigError } from '../sources/config-error';

/** Reads a file the configuration names (a password, a CA), or fails start-up saying which key. */
export function readConfiguredFile(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: null, path: key, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
}
