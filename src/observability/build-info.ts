import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The version of this build, from package.json (found from the running file upwards: src/ when
 * run from source, dist/src/ when compiled, /app/dist/src/ in the image), and Node's version.
 */
function packageVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tollgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here; one level up.
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

export const BUILD: { readonly version: string; readonly node: string } = Object.freeze({ version: packageVersion(), node: process.version });
