import { DemoWorkspace, runDemo } from './run-demo';

const workspace = new DemoWorkspace();
// Ctrl-C (or a SIGTERM) in the middle still removes what the demo created.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    workspace.removeAll();
    process.exit(130);
  });
}

runDemo((line) => process.stdout.write(`${line}\n`), workspace).then(
  (steps) => {
    process.exitCode = steps.every((s) => s.ok) ? 0 : 1;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
