import { readFileSync } from 'node:fs';
import path from 'node:path';

let cached: string | null = null;

/**
 * The version in tollgate's package.json, found by walking up from this file (src/ when run by
 * the tests, dist/src/ when built, /app/dist/src/ in the image): what `tollgate status` and the
 * build-info metric report, so replicas can be compared after a rollout.
 */
export function packageVersion(): string {
  if (cached !== null) return cached;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tollgate' && typeof pkg.version === 'string') {
        cached = pkg.version;
        return cached;
      }
    } catch {
      // Not here; one level up.
    }
    dir = path.dirname(dir);
  }
  cached = 'unknown';
  return cached;
}
