import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../sources/config-error';
import { port, section } from '../sources/fields';
import { type ConfigProblem, type YamlSource, formatPath, parseYaml, problemsFromIssues } from '../sources/yaml-source';
import { compileHttpRule, httpRuleSchema, type HttpRuleProblem } from './rules/compile-rules';
import type { HttpRule } from './rules/rule-types';
import { compileDlp, dlpSchema, type DlpProblem } from './dlp/compile-dlp';
import type { DlpPolicy } from './dlp/dlp-types';
import { buildIndex } from './match';
import { parsePattern } from './pattern';
import { ACTIONS, type Action, type AllowedPorts, type CompiledPolicy, type Pattern, type PolicyRule, type Via } from './types';

const ruleSchema = section({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, { error: 'expected a short identifier: letters, digits, "_", ".", ":" or "-"' })
    .optional(),
  match: z.union([z.string(), z.array(z.string()).min(1, { error: 'list at least one pattern' })], {
    error: 'expected a pattern or a list of patterns, e.g. ".example.com" or ["example.com", "*.example.org"]',
  }),
  action: z.enum(ACTIONS as [Action, ...Action[]], { error: `expected one of: ${ACTIONS.join(', ')}` }),
  ports: z.array(port).min(1, { error: 'list at least one port, or leave ports out' }).optional(),
  reason: z.string().max(500).optional(),
  upstream_insecure: z.boolean().optional(),
  users: z.array(z.string().min(1)).min(1, { error: 'list at least one user, or leave users out' }).optional(),
  groups: z.array(z.string().min(1)).min(1, { error: 'list at least one group, or leave groups out' }).optional(),
  required: z.boolean().optional(),
  http: z.array(z.unknown(), { error: 'expected a list of HTTP rules' }).optional(),
  allow_encoded_slashes: z.boolean({ error: 'expected true or false' }).optional(),
  cache: z.boolean({ error: 'expected true or false' }).optional(),
  dlp: z.unknown().optional(),
  // A mapping, like the configuration's own `pinning:` section, so per-rule pinning options
  // read the same in both places.
  pinning: section({ auto_splice_allowed: z.boolean({ error: 'expected true or false' }).optional() }).optional(),
  socks_bind: z.boolean({ error: 'expected true or false' }).optional(),
  via: z.union([z.string(), z.array(z.string()).min(1, { error: 'list at least one parent, or leave via out' })], { error: 'expected direct, a parent name, or a list of parent names' }).optional(),
  non_tls: z.enum(['deny', 'splice'], { error: 'expected deny or splice' }).optional(),
  inspect_non_http: z.enum(['relay', 'deny'], { error: 'expected relay or deny' }).optional(),
});

// Rules are validated one by one (below) so one bad rule does not hide the problems of others.
const policyFileSchema = section({
  description: z.string().optional(),
  rules: z.array(z.unknown(), { error: 'expected a list of rules' }),
});

export interface PolicySourceFile {
  /** File name inside the policy directory; part of the policy version. */
  readonly name: string;
  /** Path shown to people in messages and rule ids, e.g. `policies/banking.yaml`. */
  readonly displayPath: string;
  readonly text: string;
}

export interface CompileOptions {
  readonly defaultAction: Action;
  /** `udp` (SOCKS5 UDP ASSOCIATE) is optional here; left out, no UDP port is allowed without a rule listing it. */
  readonly allowedPorts: { readonly tunnel: readonly number[]; readonly http: readonly number[]; readonly udp?: readonly number[] };
  /** Actions the running gateway can carry out; a rule asking for another is a load error. */
  readonly supportedActions?: readonly Action[];
  /** Whether users are configured; rules limited to users or groups need them. */
  readonly authConfigured?: boolean;
  /** Names of `upstream.parents` a rule's `via` may use, and `upstream.via`; none = direct only. */
  readonly parents?: ReadonlySet<string>;
  readonly defaultVia?: Via;
}

/**
 * A rule's `via` (direct, a parent name, or a list of parent names tried in order), checked
 * against `upstream.parents`. Routes are chosen per destination, before any user is known on
 * some front-ends, so a rule limited to users or groups cannot set one.
 */
function compileVia(raw: z.output<typeof ruleSchema>, options: CompileOptions, at: (...keys: (string | number)[]) => Omit<ConfigProblem, 'message'>, problems: ConfigProblem[]): Via | null {
  if (raw.via === undefined) return null;
  const names = typeof raw.via === 'string' ? [raw.via] : raw.via;
  const where = (i: number) => at(...(typeof raw.via === 'string' ? ['via'] : ['via', i]));
  const known = options.parents ?? new Set<string>();
  if (raw.action === 'deny') problems.push({ ...at('via'), message: 'via only applies to rules that let traffic through (splice or inspect); remove it' });
  if (raw.users || raw.groups) problems.push({ ...at('via'), message: 'via is chosen per destination: put it on a rule for everyone (without users or groups) matching the same names' });
  names.forEach((name, i) => {
    if (name === 'direct') {
      if (names.length > 1) problems.push({ ...where(i), message: 'direct cannot be part of a failover list (traffic that must leave through a parent would bypass it); use direct alone' });
    } else if (!known.has(name)) {
      const list = known.size > 0 ? `: one of ${[...known].join(', ')}` : ' (there are none in upstream.parents)';
      problems.push({ ...where(i), message: `unknown parent proxy "${name}"; use direct or a name defined under upstream.parents${list}` });
    } else if (names.indexOf(name) !== i) problems.push({ ...where(i), message: `parent "${name}" is listed twice` });
  });
  return names[0] === 'direct' ? Object.freeze([]) : Object.freeze([...names]);
}

interface Occurrence {
  readonly rule: PolicyRule;
  readonly pattern: Pattern;
}

function setsOverlap<T>(a: ReadonlySet<T> | null, b: ReadonlySet<T> | null): boolean {
  if (a === null || b === null) return true;
  for (const p of a) if (b.has(p)) return true;
  return false;
}

function principalsOverlap(a: PolicyRule, b: PolicyRule): boolean {
  const everyoneA = a.users === null && a.groups === null;
  const everyoneB = b.users === null && b.groups === null;
  if (everyoneA || everyoneB) return everyoneA === everyoneB;
  // Rules for different users or groups may share a pattern; the same user or group twice may not.
  return (a.users !== null && b.users !== null && setsOverlap(a.users, b.users)) || (a.groups !== null && b.groups !== null && setsOverlap(a.groups, b.groups));
}

/**
 * Two rules with the same pattern would make precedence depend on file order, which nobody
 * reviewing a policy change can see; refuse them (unless their port lists are disjoint).
 */
function findDuplicates(rules: readonly PolicyRule[]): ConfigProblem[] {
  const seen = new Map<string, Occurrence[]>();
  const problems: ConfigProblem[] = [];
  for (const rule of rules) {
    for (const pattern of rule.patterns) {
      const key = `${pattern.kind}:${pattern.text}`;
      const earlier = seen.get(key) ?? [];
      for (const other of earlier) {
        const portsClash = other.rule.ports === null || rule.ports === null ? other.rule.ports === rule.ports : setsOverlap(other.rule.ports, rule.ports);
        if (!portsClash || !principalsOverlap(other.rule, rule)) continue;
        const where = other.rule.file === rule.file ? `line ${other.rule.line} of the same file` : `${other.rule.file}:${other.rule.line}`;
        problems.push({
          file: rule.file,
          line: rule.line,
          path: 'match',
          message: `pattern "${pattern.text}" is also used by the rule at ${where}; each pattern may appear in one rule only (merge them, or give them disjoint ports, users or groups)`,
        });
      }
      earlier.push({ rule, pattern });
      seen.set(key, earlier);
    }
  }
  return problems;
}

function compileHttpRules(source: YamlSource, rulePath: readonly (string | number)[], values: readonly unknown[], ruleId: string, problems: ConfigProblem[]): HttpRule[] {
  const compiled: HttpRule[] = [];
  values.forEach((value, j) => {
    const at = [...rulePath, 'http', j];
    const checked = httpRuleSchema.safeParse(value);
    if (!checked.success) {
      problems.push(...problemsFromIssues(source, checked.error.issues, at));
      return;
    }
    const local: HttpRuleProblem[] = [];
    compiled.push(compileHttpRule(checked.data, `${ruleId}/http[${j}]`, local));
    for (const problem of local) {
      const where = [...at, ...problem.path];
      problems.push({ file: source.file, line: source.lineOf(where), path: formatPath(where), message: problem.message });
    }
  });
  return compiled;
}

function compileDlpBlock(source: YamlSource, rulePath: readonly (string | number)[], value: unknown, problems: ConfigProblem[]): DlpPolicy | null {
  const at = [...rulePath, 'dlp'];
  const checked = dlpSchema.safeParse(value);
  if (!checked.success) {
    problems.push(...problemsFromIssues(source, checked.error.issues, at));
    return null;
  }
  const local: DlpProblem[] = [];
  const dlp = compileDlp(checked.data, local);
  for (const problem of local) {
    const where = [...at, ...problem.path];
    problems.push({ file: source.file, line: source.lineOf(where), path: formatPath(where), message: problem.message });
  }
  return dlp;
}

function compileRule(source: YamlSource, raw: z.output<typeof ruleSchema>, index: number, options: CompileOptions, problems: ConfigProblem[]): PolicyRule | null {
  const supported = options.supportedActions ?? ACTIONS;
  const rulePath = ['rules', index];
  const line = source.lineOf(rulePath) ?? 0;
  const at = (...keys: (string | number)[]) => {
    const path = [...rulePath, ...keys];
    return { file: source.file, line: source.lineOf(path), path: formatPath(path) };
  };
  const patterns: Pattern[] = [];
  const matches = typeof raw.match === 'string' ? [raw.match] : raw.match;
  matches.forEach((text, i) => {
    const result = parsePattern(text);
    if (result.ok) patterns.push(result.pattern);
    else problems.push({ ...at(...(typeof raw.match === 'string' ? ['match'] : ['match', i])), message: result.reason });
  });
  if (!supported.includes(raw.action)) {
    problems.push({
      ...at('action'),
      message: `action "${raw.action}" is not available in this build (supported: ${supported.join(', ')}); it is refused rather than treated as another action`,
    });
  }
  if (raw.upstream_insecure && raw.action !== 'inspect') problems.push({ ...at('upstream_insecure'), message: 'upstream_insecure only applies to inspect rules' });
  if (raw.required !== undefined && raw.action !== 'inspect') problems.push({ ...at('required'), message: 'required only applies to inspect rules (it keeps pinning detection from splicing them)' });
  const autoSpliceAllowed = raw.pinning?.auto_splice_allowed;
  if (autoSpliceAllowed !== undefined && raw.action !== 'inspect') {
    problems.push({ ...at('pinning', 'auto_splice_allowed'), message: 'auto_splice_allowed only applies to inspect rules (pinning detection only ever splices inspected names)' });
  }
  if (autoSpliceAllowed === true && raw.required === true) {
    problems.push({ ...at('pinning', 'auto_splice_allowed'), message: 'a rule cannot be both required (never auto-spliced) and auto_splice_allowed; keep one' });
  }
  if ((raw.users || raw.groups) && !options.authConfigured) {
    problems.push({ ...at(raw.users ? 'users' : 'groups'), message: 'this rule is limited to users or groups, but no users are configured (set auth.users_file)' });
  }
  if (raw.http && raw.action !== 'inspect') {
    problems.push({ ...at('http'), message: 'HTTP rules need to see the requests: they belong on inspect rules (spliced TLS is never decrypted)' });
  }
  if (raw.allow_encoded_slashes !== undefined && !raw.http) {
    problems.push({ ...at('allow_encoded_slashes'), message: 'allow_encoded_slashes only matters for rules with http rules (it is how their paths are matched)' });
  }
  if (raw.cache !== undefined && raw.action === 'deny') problems.push({ ...at('cache'), message: 'cache only applies to rules that let traffic through (inspect, or splice for plain HTTP)' });
  if (raw.dlp !== undefined && raw.action !== 'inspect') {
    problems.push({ ...at('dlp'), message: 'upload inspection needs to see the requests: dlp belongs on inspect rules (spliced TLS is never decrypted)' });
  }
  if (raw.socks_bind === true && raw.action === 'deny') {
    problems.push({ ...at('socks_bind'), message: 'socks_bind lets a destination connect back through SOCKS5 BIND; a deny rule refuses it anyway (remove socks_bind)' });
  }
  if (raw.non_tls !== undefined && raw.action === 'deny') problems.push({ ...at('non_tls'), message: 'non_tls only applies to rules that let tunnels through (splice or inspect)' });
  if (raw.inspect_non_http !== undefined && raw.action !== 'inspect') {
    problems.push({ ...at('inspect_non_http'), message: 'inspect_non_http only applies to inspect rules (a spliced tunnel is never decrypted); use non_tls for cleartext' });
  }
  // Bytes relayed as "not HTTP" are never seen by HTTP rules: with both, a client could frame a
  // request so it is not taken for one and reach what the rules deny.
  const hasHttpRules = (raw.http?.length ?? 0) > 0;
  if (hasHttpRules && raw.inspect_non_http === 'relay') {
    problems.push({
      ...at('inspect_non_http'),
      message:
        "inspect_non_http: relay passes decrypted streams that are not HTTP to the origin unseen by this rule's http rules; remove it (rules with http rules refuse such streams), or give the non-HTTP service a rule of its own",
    });
  }
  if (hasHttpRules && raw.non_tls === 'splice') {
    problems.push({
      ...at('non_tls'),
      message: "non_tls: splice relays tunnels that are neither TLS nor HTTP unseen by this rule's http rules; remove it, or give the non-TLS service a rule of its own",
    });
  }
  const id = raw.name ?? `${source.file}:${line}`;
  const dlp = raw.dlp !== undefined ? compileDlpBlock(source, rulePath, raw.dlp, problems) : null;
  const http = raw.http ? compileHttpRules(source, rulePath, raw.http, id, problems) : [];
  if (patterns.length !== matches.length) return null;
  return Object.freeze({
    id,
    file: source.file,
    line,
    patterns: Object.freeze(patterns),
    action: raw.action,
    ports: raw.ports ? new Set(raw.ports) : null,
    reason: raw.reason ?? null,
    upstreamInsecure: raw.upstream_insecure ?? false,
    users: raw.users ? new Set(raw.users) : null,
    groups: raw.groups ? new Set(raw.groups) : null,
    required: raw.required ?? false,
    autoSpliceAllowed: raw.required === true ? false : (autoSpliceAllowed ?? (http.length === 0 && dlp === null)),
    allowEncodedSlashes: raw.allow_encoded_slashes ?? false,
    http: Object.freeze(http),
    cache: raw.cache ?? true,
    dlp,
    socksBind: raw.socks_bind ?? false,
    via: compileVia(raw, options, at, problems),
    nonTls: raw.non_tls ?? 'deny',
    // A rule with HTTP rules is about HTTP: what is not HTTP is refused unless it says otherwise.
    inspectNonHttp: raw.inspect_non_http ?? (http.length > 0 ? 'deny' : 'relay'),
  });
}

function policyVersion(files: readonly PolicySourceFile[], options: CompileOptions): string {
  const hash = createHash('sha256');
  hash.update(
    JSON.stringify({
      defaultAction: options.defaultAction,
      allowedPorts: options.allowedPorts,
      authConfigured: options.authConfigured ?? false,
      ...(options.defaultVia?.length ? { defaultVia: options.defaultVia } : {}),
    }),
  );
  for (const file of files) hash.update(`\0${file.name}\0${file.text}`);
  return hash.digest('hex').slice(0, 12);
}

/** Compiles policy files into one immutable policy, or throws ConfigError listing every problem. */
export function compilePolicy(files: readonly PolicySourceFile[], options: CompileOptions): CompiledPolicy {
  const supported = options.supportedActions ?? ACTIONS;
  const problems: ConfigProblem[] = [];
  const rules: PolicyRule[] = [];
  const names = new Map<string, PolicyRule>();
  for (const file of files) {
    const yaml = parseYaml(file.displayPath, file.text);
    if (!yaml.ok) {
      problems.push(...yaml.problems);
      continue;
    }
    const parsed = policyFileSchema.safeParse(yaml.source.value ?? {});
    if (!parsed.success) {
      problems.push(...problemsFromIssues(yaml.source, parsed.error.issues));
      continue;
    }
    parsed.data.rules.forEach((value, i) => {
      const checked = ruleSchema.safeParse(value);
      if (!checked.success) {
        problems.push(...problemsFromIssues(yaml.source, checked.error.issues, ['rules', i]));
        return;
      }
      const raw = checked.data;
      const rule = compileRule(yaml.source, raw, i, options, problems);
      if (!rule) return;
      const sameName = raw.name ? names.get(raw.name) : undefined;
      if (sameName) {
        problems.push({ file: rule.file, line: rule.line, path: `rules[${i}].name`, message: `name "${raw.name}" is already used at ${sameName.file}:${sameName.line}` });
      } else if (raw.name) names.set(raw.name, rule);
      rules.push(rule);
    });
  }
  problems.push(...findDuplicates(rules));
  if (!supported.includes(options.defaultAction)) {
    problems.push({ file: 'configuration', line: null, path: 'default_action', message: `"${options.defaultAction}" is not available in this build` });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const allowedPorts: AllowedPorts = { tunnel: new Set(options.allowedPorts.tunnel), http: new Set(options.allowedPorts.http), udp: new Set(options.allowedPorts.udp ?? []) };
  return Object.freeze({
    rules: Object.freeze(rules),
    defaultAction: options.defaultAction,
    allowedPorts,
    version: policyVersion(files, options),
    index: buildIndex(rules),
    defaultVia: options.defaultVia ?? [],
  });
}

/** Reads every `*.yaml`/`*.yml` file of a directory, in name order. */
function readPolicyDirectory(dir: string): PolicySourceFile[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'directory not found' : (err as Error).message;
    throw new ConfigError([{ file: dir, line: null, path: 'policies', message: `cannot read the policy directory: ${reason}` }]);
  }
  return entries
    .filter((entry) => /\.ya?ml$/.test(entry) && !entry.startsWith('.'))
    .sort()
    .map((entry) => {
      const full = path.join(dir, entry);
      return { name: entry, displayPath: path.relative(process.cwd(), full) || full, text: readFileSync(full, 'utf8') };
    });
}

export function loadPolicy(dir: string, options: CompileOptions): CompiledPolicy {
  return compilePolicy(readPolicyDirectory(dir), options);
}
