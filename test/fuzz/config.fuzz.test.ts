import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { ConfigError } from '../../src/sources/config-error';
import { parseConfig } from '../../src/config/load-config';
import { compilePolicy } from '../../src/policy/load-policy';

const RUNS = 100;
/** A fixed seed keeps CI deterministic (the outcome mix below is asserted); change it to explore. */
const SEED = 20261201;
const SHIPPED = readFileSync(path.resolve(__dirname, '../../tollgate.yaml'), 'utf8');
const CONFIG_PATH = '/etc/tollgate/tollgate.yaml';

/** Either a typed value or a ConfigError whose every problem names the file (and a line when one exists). */
function outcome<T>(load: () => T, file: string): 'ok' | 'config-error' {
  try {
    load();
    return 'ok';
  } catch (err) {
    if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    expect(err.problems.length).toBeGreaterThan(0);
    for (const problem of err.problems) {
      expect(problem.file).toContain(file);
      expect(problem.message.length).toBeGreaterThan(0);
    }
    return 'config-error';
  }
}

const KEYS = {
  listen: ['explicit', 'socks', 'transparent_tls', 'transparent_http', 'admin'],
  upstream: ['ca_file', 'hosts', 'allow_addresses', 'connect_timeout', 'response_timeout', 'idle_timeout', 'max_sockets_per_host'],
  http: ['via', 'x_forwarded_for', 'max_header_size', 'max_headers'],
  limits: ['header_timeout', 'proxy_header_timeout', 'peek_timeout', 'tls_handshake_timeout', 'client_idle_timeout', 'shutdown_grace', 'max_connections', 'max_connections_per_client'],
  audit: ['file', 'redact_query_params'],
  ca: ['cert', 'key', 'chain', 'key_type', 'leaf_key_type', 'leaf_validity', 'leaf_cache_size'],
} as const;

/** Values that look like what goes in a config: units, addresses, odd numbers, wrong types. */
const leaf = fc.oneof(
  fc.constantFrom(
    '10s',
    '64KiB',
    '0',
    '-1s',
    '1e309',
    '5 parsecs',
    '127.0.0.1:0',
    '[::1]:3128',
    '10.0.0.0/8',
    'fd00::/8',
    '300.1.1.1/8',
    'tollgate',
    'a b',
    '',
    null,
    true,
    'stdout',
    '~',
    '.inf',
    'NaN',
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.integer()), { maxLength: 4 }),
);

const structuredConfig = fc
  .record(Object.fromEntries(Object.entries(KEYS).map(([section, keys]) => [section, fc.oneof(fc.dictionary(fc.constantFrom(...keys, 'typo_key'), leaf, { maxKeys: 4 }), leaf)])), { requiredKeys: [] })
  .map((value) => YAML.stringify(value));

/** The shipped file with bytes cut, duplicated or replaced. */
const mutatedShipped = fc.array(fc.tuple(fc.nat(SHIPPED.length), fc.nat(20), fc.string({ unit: 'binary', maxLength: 8 })), { minLength: 1, maxLength: 4 }).map((edits) => {
  let text = SHIPPED;
  for (const [at, cut, insert] of edits) text = text.slice(0, at) + insert + text.slice(at + cut);
  return text;
});

const anyYaml = fc.anything({ maxDepth: 3 }).map((value) => {
  try {
    return YAML.stringify(value) ?? '';
  } catch {
    return String(value);
  }
});

describe('configuration loading (property)', () => {
  test('the shipped configuration loads', () => {
    expect(outcome(() => parseConfig(SHIPPED, CONFIG_PATH), 'tollgate.yaml')).toBe('ok');
  });

  test('any document gives a typed configuration or a ConfigError naming the file — never another exception', () => {
    const seen = { ok: 0, 'config-error': 0 };
    fc.assert(
      fc.property(fc.oneof(structuredConfig, mutatedShipped, anyYaml, fc.string({ maxLength: 200 })), (text) => {
        seen[outcome(() => parseConfig(text, CONFIG_PATH), 'tollgate.yaml')]++;
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // Both outcomes occur, so the generators reach past the YAML parser into the schema.
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen['config-error']).toBeGreaterThan(0);
  });

  test('an alias without its anchor, and alias bombs, are ConfigErrors (found by this test)', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(', ')}]`), 'limits: *h', ''].join('\n');
    for (const text of ['*x', 'limits: *missing\n', bomb]) expect(outcome(() => parseConfig(text, CONFIG_PATH), 'tollgate.yaml')).toBe('config-error');
  });

  test('problems inside a mapping carry a line number', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KEYS.limits), fc.constantFrom('ten seconds', -5, 'x', [1]), (key, value) => {
        const text = `# comment\nlimits:\n  ${key}: ${JSON.stringify(value)}\n`;
        try {
          parseConfig(text, CONFIG_PATH);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).problems[0]!.line).toBe(3);
          expect((err as ConfigError).message).toMatch(new RegExp(`tollgate\\.yaml:3: limits\\.${key}: `));
          return;
        }
        throw new Error(`accepted ${key}: ${JSON.stringify(value)}`);
      }),
      { numRuns: 50 },
    );
  });
});

describe('policy loading (property)', () => {
  const patternish = fc.oneof(
    fc.constantFrom('example.com', '*.example.com', '.example.com', '10.0.0.0/8', '2001:db8::/32', '*', '**.x', 'a..b', '1.2.3.4/33', 'bücher.example', '-x.com', ''),
    fc.string({ maxLength: 20 }),
  );
  const rule = fc.record(
    {
      name: fc.oneof(fc.string({ maxLength: 10 }), fc.integer()),
      match: fc.oneof(patternish, fc.array(patternish, { maxLength: 3 })),
      action: fc.oneof(fc.constantFrom('deny', 'splice', 'inspect', 'allow'), leaf),
      ports: fc.oneof(fc.array(fc.integer({ min: -1, max: 70000 }), { maxLength: 3 }), leaf),
      reason: leaf,
    },
    { requiredKeys: ['match', 'action'] },
  );
  const policyText = fc.oneof(
    fc.record({ rules: fc.array(rule, { maxLength: 5 }), description: fc.option(fc.string({ maxLength: 10 })) }, { requiredKeys: [] }).map((v) => YAML.stringify(v)),
    anyYaml,
    fc.string({ maxLength: 200 }),
  );

  test('any policy files compile or give a ConfigError naming the file — never another exception', () => {
    const seen = { ok: 0, 'config-error': 0 };
    fc.assert(
      fc.property(fc.array(policyText, { minLength: 1, maxLength: 3 }), (texts) => {
        const files = texts.map((text, i) => ({ name: `p${i}.yaml`, displayPath: `policies/p${i}.yaml`, text }));
        seen[outcome(() => compilePolicy(files, { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } }), 'policies/p')]++;
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen['config-error']).toBeGreaterThan(0);
  });
});
