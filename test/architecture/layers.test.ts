import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The structure of src/, enforced: folders depend downward only, and only egress/ and
 * backplane/ open outbound connections. A module may import from its own folder and from any
 * folder in a lower layer, never from a folder in its own layer or above. Type-only imports
 * count too: a type is a dependency on the meaning of another module.
 *
 * Two doors out, for two kinds of destination:
 * - egress/ dials where a *client* asked to go. Every such connection is resolved by the
 *   gateway, checked by the destination guard (no internal addresses) and the loop check, and
 *   carries the policy's decision. Nothing else may reach a client-chosen destination.
 * - backplane/ dials the infrastructure the *operator* named in the configuration or on the
 *   command line: the shared-state Redis, the syslog collector, a replica's admin listener for
 *   `tollgate status`. These are usually internal addresses, which the destination guard
 *   rightly refuses, and they are never chosen by a client; routing them through egress/ would
 *   mean either exempting them from the guard there (weakening the one door clients use) or
 *   listing infrastructure in upstream.allow_addresses (opening it to clients). backplane/ sits
 *   above the layers whose ports it implements (identity's failure counter, terminals' pinning
 *   ledger, audit's syslog transport), and only the composition (gateway.ts, services.ts) and cli/
 *   import it.
 *
 * Layers, top to bottom (see the README's "How a connection goes through"):
 */
const LAYERS: readonly (readonly string[])[] = [
  ['main.ts'],
  ['cli'],
  ['gateway.ts'],
  ['services.ts'],
  ['config'],
  ['admin', 'frontends', 'backplane'],
  ['tunnel'],
  ['terminals'],
  ['http'],
  ['flow'],
  ['relay'],
  ['policy', 'egress', 'tls'],
  ['audit', 'identity'],
  ['sources', 'observability'],
  ['errors'],
  ['protocol', 'logging'],
];

const SRC = path.resolve(__dirname, '../../src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

/** The top-level unit of src/ a file belongs to: its first folder, or the file itself. */
function unitOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!;
}

function layerOf(unit: string): number {
  const index = LAYERS.findIndex((layer) => layer.includes(unit));
  if (index < 0) throw new Error(`src/${unit} is in no layer: add it to LAYERS in test/architecture/layers.test.ts`);
  return index;
}

/** Relative imports of a file, as the files they name. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => m[1]!);
  specs.push(...[...text.matchAll(/import\('(\.[^']+)'\)/g)].map((m) => m[1]!));
  return specs.map((spec) => {
    const resolved = path.resolve(path.dirname(file), spec);
    return statSync(`${resolved}.ts`, { throwIfNoEntry: false }) ? `${resolved}.ts` : path.join(resolved, 'index.ts');
  });
}

/** Calls that open connections or create network clients: only egress/ and backplane/ may make them. */
const OUTBOUND = [
  /\bnet\.(connect|createConnection)\s*\(/,
  /\btls\.connect\s*\(/,
  /\bhttps?\.(request|get)\s*\(/,
  /\bhttp2\.connect\s*\(/,
  /\bnew\s+(https?\.)?Agent\s*\(/,
  /from\s+'undici'/,
  /\bdgram\.createSocket\s*\(/,
  // Also a destructured or renamed dgram: any UDP socket can send where a client asks.
  /from\s+'(node:)?dgram'/,
  /require\(\s*'(node:)?dgram'\s*\)/,
  /from\s+'ioredis'/,
  /\bfetch\s*\(/,
];

/** The folders allowed to open connections, and why (see the comment at the top). */
const DOORS_OUT = new Set(['egress', 'backplane']);

/**
 * Text the gateway serves to the operator's browser and never runs itself: a `fetch(` in it is
 * the browser asking the admin listener it was loaded from, not a connection out of tollgate.
 */
const BROWSER_SCRIPTS = new Set([path.join('admin', 'flow-view', 'flows-script.ts')]);

describe('the layering of src/', () => {
  const files = sourceFiles(SRC);

  test('every folder is in a layer', () => {
    for (const file of files) expect(() => layerOf(unitOf(file))).not.toThrow();
  });

  test('imports go to the own folder or a lower layer only', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = unitOf(file);
      for (const target of importsOf(file)) {
        const to = unitOf(target);
        if (to === from) continue;
        if (layerOf(to) <= layerOf(from)) upward.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)} (${from} -> ${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  test('only egress/ and backplane/ open outbound connections', () => {
    const offenders: string[] = [];
    for (const file of files) {
      if (DOORS_OUT.has(unitOf(file)) || BROWSER_SCRIPTS.has(path.relative(SRC, file))) continue;
      const text = readFileSync(file, 'utf8');
      for (const pattern of OUTBOUND) if (pattern.test(text)) offenders.push(`${path.relative(SRC, file)}: ${pattern.source}`);
    }
    expect(offenders).toEqual([]);
  });

  test('the check sees what it must: an upward import and a dial outside egress are caught', () => {
    expect(importsOf(path.join(SRC, 'http/origin-h1.ts')).map((f) => path.relative(SRC, f))).toContain(path.join('egress', 'h1-pools.ts'));
    expect(OUTBOUND.some((p) => p.test('const s = tls.connect({ host })'))).toBe(true);
    expect(OUTBOUND.some((p) => p.test('new http.Agent({ keepAlive: true })'))).toBe(true);
    expect(OUTBOUND.some((p) => p.test("import { Redis } from 'ioredis';"))).toBe(true);
    expect(OUTBOUND.some((p) => p.test("const socket = dgram.createSocket('udp4');"))).toBe(true);
    expect(OUTBOUND.some((p) => p.test("import { createSocket } from 'node:dgram';"))).toBe(true);
    expect(OUTBOUND.some((p) => p.test("import type { Socket } from 'node:dgram';"))).toBe(true);
    expect(layerOf('frontends')).toBeLessThan(layerOf('http'));
    // backplane/ implements ports of lower layers and is composed only from above.
    expect(layerOf('backplane')).toBeLessThan(layerOf('terminals'));
    expect(layerOf('backplane')).toBeGreaterThan(layerOf('gateway.ts'));
  });
});
