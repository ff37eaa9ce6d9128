import { runDemo } from './run-demo';

test('npm run demo: all four outcomes, each with its audit lines', async () => {
  const lines: string[] = [];
  const steps = await runDemo((line) => lines.push(line));
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
