import { runDemo } from './run-demo';

runDemo((line) => process.stdout.write(`${line}\n`)).then(
  (steps) => {
    process.exitCode = steps.every((s) => s.ok) ? 0 : 1;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
