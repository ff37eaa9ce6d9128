import path from 'node:path';
import { run } from './run';

export const ROOT = path.resolve(__dirname, '../../..');

/**
 * Compiles the gateway into its own output directory under .build/ (inside the repository, so
 * node_modules resolves), so that test files spawning the CLI never read a dist/ another test
 * file is rewriting. Returns the path of main.js.
 */
export async function buildCli(name: string): Promise<string> {
  const outDir = path.join(ROOT, '.build', name);
  const result = await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', outDir, '--tsBuildInfoFile', path.join(outDir, '.tsbuildinfo')], {
    timeoutMs: 90_000,
  });
  if (result.code !== 0) throw new Error(`build failed: ${result.stdout.toString()}${result.stderr}`);
  return path.join(outDir, 'src/main.js');
}
