import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './build';
import { tempDir } from './pki';
import { run } from './run';

/** Runs the compiled CLI at `main` as a shell would (node main.js ARGS), with stdout as text. */
export function runCli(main: string, args: readonly string[], cwd = ROOT) {
  return run(process.execPath, [main, ...args], { timeoutMs: 20_000 }).then((r) => ({ ...r, out: r.stdout.toString(), cwd }));
}

/** A fresh directory holding `files` (relative name -> text), for --config to point into. */
export function writeSetup(files: Record<string, string>): string {
  const dir = tempDir('cli');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

export function expectNoStackTrace(stderr: string): void {
  expect(stderr).not.toMatch(/^\s+at /m);
}
