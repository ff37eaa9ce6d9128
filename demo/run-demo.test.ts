import { existsSync } from 'node:fs';
import { DemoWorkspace, runDemo } from './run-demo';

test('npm run demo: all four outcomes, each with its audit lines; it leaves nothing behind', async () => {
  const lines: string[] = [];
  const workspace = new DemoWorkspace();
  const created = workspace.dirs;
  const seen: string[] = [];
  const steps = await runDemo((line) => {
    lines.push(line);
    seen.push(...created.filter((d) => !seen.includes(d)));
  }, workspace);
  // The demo's own directory and the gateway's (CA key, audit file) existed, and are gone.
  expect(seen.length).toBeGreaterThanOrEqual(2);
  expect(seen.filter((d) => existsSync(d))).toEqual([]);
  expect(steps.map((s) => [s.title, s.ok])).toEqual([
    ['1. inspected', true],
    ['2. spliced', true],
    ['3. denied', true],
    ['4. bad origin certificate', true],
  ]);
  const text = lines.join('\n');
  expect(text).toMatch(/"type":"request","host":"good\.demo\.test".*"status":200.*"action":"inspect"/);
  expect(text).toMatch(/"type":"connection","target":"spliced\.demo\.test:[0-9]+".*"action":"splice"/);
  expect(text).toMatch(/"type":"connection","target":"denied\.demo\.test:[0-9]+".*"action":"deny","rule":"demo-deny"/);
  expect(text).toMatch(/"type":"request","host":"bad\.demo\.test".*"status":502.*self-signed/);
});
