import { readFileSync } from 'node:fs';
import path from 'node:path';
import { shippedNodeFlags } from './subjects';

describe('the bench runs the gateway as it ships', () => {
  const repo = path.resolve(__dirname, '..');

  test('the node flags come from bin/tollgate, which execs node with them', () => {
    const flags = shippedNodeFlags(repo);
    expect(flags).toContain('--max-semi-space-size=32');
    const script = readFileSync(path.join(repo, 'bin', 'tollgate'), 'utf8');
    expect(script).toMatch(/^exec node --inspect-port=0\.0\.0\.1:9229 \$NODE_FLAGS "\$root\/dist\/src\/main\.js" "\$@"$/m);
  });
});
