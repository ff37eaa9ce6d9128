import { loadConfig } from '../config/load-config';
import { SUPPORTED_ACTIONS } from '../config/runtime';
import type { GatewayConfig } from '../config/schema';
import type { Principal } from '../identity/principal';
import { loadUsersFile, type UsersTable } from '../identity/users-file';
import { describeDlp } from '../policy/dlp/compile-dlp';
import { viaText } from '../policy/decide';
import { loadPolicy } from '../policy/load-policy';
import { formatHttpRules, formatRuleTable, ruleAudience, ruleTableRows } from '../policy/rule-table';
import { describeHttpRule } from '../policy/rules/compile-rules';
import type { CompiledPolicy, PolicyRule } from '../policy/types';
import { findUnreachable, type Unreachable } from './reachability';
import { ReverseRouter } from '../frontends/reverse-routes';
import { decide } from '../policy/decide';
import { ConfigError } from '../sources/config-error';
import { ServerCertificateSet } from '../tls/server-certificates';

interface Checked {
  readonly configPath: string;
  readonly config: GatewayConfig;
  readonly users: UsersTable | null;
  readonly policy: CompiledPolicy;
  readonly unreachable: readonly Unreachable[];
}

/** Loads everything the gateway would; throws ConfigError naming every problem. */
function load(configPath: string): Checked {
  const config = loadConfig(configPath);
  const users = config.auth.usersFile === null ? null : loadUsersFile(config.auth.usersFile);
  const policy = loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
    authConfigured: users !== null,
    parents: new Set(Object.keys(config.upstream.parents)),
    defaultVia: config.upstream.via,
  });
  const principals: Principal[] | null = users === null ? null : [...users.users.values()].map((u) => ({ user: u.name, groups: u.groups }));
  return { configPath, config, users, policy, unreachable: findUnreachable(policy, principals) };
}

/**
 * `tollgate check`: validate the configuration, every policy file and the users file; print the
 * rule table (with who each rule applies to) and the rules no request can reach. Throws
 * ConfigError when anything is invalid; unreachable rules are warnings, not errors.
 */
export function runCheck(configPath: string, out: (line: string) => void): void {
  const { config, users, policy, unreachable } = load(configPath);
  out(`configuration ${configPath}: ok`);
  if (users === null) out('users: none (auth.users_file is not set; clients are not authenticated)');
  else {
    const groups = new Set([...users.users.values()].flatMap((u) => u.groups));
    out(`users ${config.auth.usersFile}: ${users.users.size} users in ${groups.size} groups, version ${users.version}; proxy authentication required (realm "${config.auth.realm}")`);
  }
  out(`policies ${config.policiesDir}: ${policy.rules.length} rules, version ${policy.version}`);
  out(`default_action: ${policy.defaultAction}`);
  out(`allowed_ports: tunnel ${config.allowedPorts.tunnel.join(',') || '(none)'}; http ${config.allowedPorts.http.join(',') || '(none)'}; udp ${config.allowedPorts.udp.join(',') || '(none)'}`);
  for (const line of describePinning(policy, config.pinning.mode, config.pinning.minClients)) out(line);
  for (const line of describeParents(config, policy)) out(line);
  out('');
  out('Rules, most specific first (the first row that matches a destination, port and user decides):');
  out(formatRuleTable(policy, (rule, pattern) => (unreachable.some((u) => u.rule === rule && u.pattern === pattern) ? ' (never decides)' : '')));
  if (unreachable.length > 0) {
    out('');
    out('Rules no request can reach (warnings; the policy is valid):');
    for (const u of unreachable) out(`  ${u.rule.id} (${u.rule.file}:${u.rule.line}), pattern ${u.pattern.text}: ${u.why}`);
  }
  const http = formatHttpRules(policy);
  if (http !== '') {
    out('');
    out('HTTP rules and upload inspection, tried in this order for each request (allow and deny end the evaluation):');
    out(http);
  }
  for (const line of describeReverse(config, policy)) out(line);
}

/** `tollgate check --json`: the same facts as one JSON document. */
export function checkJson(configPath: string): Record<string, unknown> {
  const { config, users, policy, unreachable } = load(configPath);
  const rules = policy.rules.map((rule) => ({
    id: rule.id,
    file: rule.file,
    line: rule.line,
    action: rule.action,
    match: rule.patterns.map((p) => p.text),
    ports: rule.ports === null ? null : [...rule.ports],
    users: rule.users === null ? null : [...rule.users],
    groups: rule.groups === null ? null : [...rule.groups],
    reason: rule.reason,
    cache: rule.cache,
    upstream_insecure: rule.upstreamInsecure,
    required: rule.required,
    auto_splice_allowed: rule.autoSpliceAllowed,
    http: rule.http.map((h) => ({ id: h.id, action: h.action, description: describeHttpRule(h).replace(/\s+/, ' ') })),
    dlp: rule.dlp ? describeDlp(rule.dlp) : null,
    unreachable: unreachable.filter((u) => u.rule === rule).map((u) => ({ pattern: u.pattern.text, why: u.why })),
  }));
  const table = ruleTableRows(policy).map(({ rule, pattern }) => ({
    pattern: pattern.text,
    action: rule.action,
    ports: rule.ports === null ? 'allowed_ports' : [...rule.ports],
    who: ruleAudience(rule),
    rule: rule.id,
    decides: !unreachable.some((u) => u.rule === rule && u.pattern === pattern),
  }));
  return {
    ok: true,
    configuration: configPath,
    users: users === null ? null : { file: config.auth.usersFile, users: users.users.size, groups: new Set([...users.users.values()].flatMap((u) => u.groups)).size, version: users.version },
    policy: {
      directory: config.policiesDir,
      version: policy.version,
      default_action: policy.defaultAction,
      allowed_ports: { tunnel: config.allowedPorts.tunnel, http: config.allowedPorts.http, udp: config.allowedPorts.udp },
      rules,
      table,
    },
    pinning: {
      mode: config.pinning.mode,
      min_clients: config.pinning.minClients,
      never_auto_spliced: policy.rules.filter((r) => r.action === 'inspect' && neverAutoSpliced(r) !== null).map((r) => r.id),
    },
    warnings: unreachable.map((u) => `${u.rule.id}, pattern ${u.pattern.text}: ${u.why}`),
    reverse: reverseJson(config, policy),
    upstream: parentsJson(config, policy),
  };
}

/**
 * The reverse-proxy listener's routes (most specific first, as they match), the policy decision
 * on each route's host, and the certificates with the names they serve. Loading them validates
 * the files (a ConfigError names file, key and fix).
 */
function reverseJson(config: GatewayConfig, policy: CompiledPolicy): Record<string, unknown> | null {
  const { reverse, listen } = config;
  if (!listen.reverse && !listen.reverseHttp && reverse.routes.length === 0) return null;
  const router = ReverseRouter.compile(reverse, config.sourcePath);
  const certificates = ServerCertificateSet.load(reverse.certificates, 'reverse.certificates').set;
  if (listen.reverse && certificates.certificates.length === 0) {
    throw new ConfigError([{ file: config.sourcePath, line: null, path: 'reverse.certificates', message: 'listen.reverse needs at least one { cert, key } pair; add one or remove listen.reverse' }]);
  }
  const routes = router.all.map((route) => {
    const host = route.hostPattern === null ? null : route.hostPattern.replace(/^\*\./, 'x.');
    const decision =
      host === null
        ? null
        : decide({ target: { kind: 'name', name: host }, port: listen.reverse ? 443 : 80, sni: null, frontend: listen.reverse ? 'transparent-tls' : 'transparent-http', principal: null }, policy);
    return {
      route: route.route,
      backend: route.backend,
      ca_file: route.caFile,
      action: decision?.action ?? null,
      rule: decision?.rule?.id ?? null,
      certificate: route.hostPattern === null || !listen.reverse ? null : certificates.covers(host!) ? 'covered' : 'NOT covered by reverse.certificates',
    };
  });
  return { routes, certificates: certificates.certificates.map((c) => ({ cert: c.certFile, names: [...c.names, ...c.addresses], not_after: c.notAfter.toISOString() })) };
}

function describeReverse(config: GatewayConfig, policy: CompiledPolicy): string[] {
  const facts = reverseJson(config, policy);
  if (facts === null) return [];
  const lines = ['', 'Reverse proxy routes (exact host before wildcard, then the longest path_prefix; else default_route; else 421):'];
  for (const r of facts.routes as { route: string; backend: string; ca_file: string | null; action: string | null; rule: string | null; certificate: string | null }[]) {
    const policyText = r.action === null ? 'policy: per request Host' : `policy: ${r.action} (${r.rule ?? 'default_action'})`;
    lines.push(`  ${r.route} -> ${r.backend}${r.ca_file ? ` (ca_file ${r.ca_file})` : ''}; ${policyText}${r.certificate ? `; certificate ${r.certificate}` : ''}`);
  }
  for (const c of facts.certificates as { cert: string; names: string[]; not_after: string }[]) lines.push(`  certificate ${c.cert}: ${c.names.join(', ')} (until ${c.not_after})`);
  return lines;
}

/** Why pinning detection may never splice an inspect rule's names, or null when it may. */
function neverAutoSpliced(rule: PolicyRule): string | null {
  if (rule.autoSpliceAllowed) return null;
  if (rule.required) return 'required: true';
  if (rule.http.length > 0 || rule.dlp) return 'HTTP rules or DLP; opt in with pinning.auto_splice_allowed: true';
  return 'pinning.auto_splice_allowed: false';
}

/**
 * What certificate-pinning detection may do to inspect rules: a reviewer should see which
 * destinations could stop being inspected on clients' say-so, in report mode too (switching to
 * auto_splice is one line of configuration).
 */
function describePinning(policy: CompiledPolicy, mode: string, minClients: number): string[] {
  const inspected = policy.rules.filter((r) => r.action === 'inspect');
  const lines = [`pinning.mode: ${mode} (a name counts as pinned when ${minClients} client addresses reject its minted certificate)`];
  const never = inspected.flatMap((r) => {
    const why = neverAutoSpliced(r);
    return why === null ? [] : [`${r.id} (${why})`];
  });
  const optedIn = inspected.filter((r) => r.autoSpliceAllowed && (r.http.length > 0 || r.dlp)).map((r) => r.id);
  if (never.length > 0) lines.push(`  never auto-spliced: ${never.join(', ')}`);
  if (optedIn.length > 0) lines.push(`  may be auto-spliced although they have HTTP rules or DLP (opted in): ${optedIn.join(', ')}`);
  return lines;
}

/** Where a parent's credentials come from, never what they are. */
function credentialsSource(parent: GatewayConfig['upstream']['parents'][string]): string | null {
  if (parent.credentialsFile !== null) return `credentials_file ${parent.credentialsFile}`;
  return parent.credentialsEnv !== null ? `credentials_env ${parent.credentialsEnv}` : null;
}

/**
 * The ways out: `upstream.via`, each parent proxy, and the rules that name a `via` (the others
 * take upstream.via). Credentials are named by where they come from, never shown.
 */
function describeParents(config: GatewayConfig, policy: CompiledPolicy): string[] {
  const parents = Object.entries(config.upstream.parents);
  const withVia = policy.rules.filter((r) => r.via !== null);
  if (parents.length === 0 && withVia.length === 0) return ['upstream.via: direct (no parent proxies)'];
  const lines = [`upstream.via: ${viaText(policy.defaultVia)} (destinations whose rule names no via)`];
  for (const [name, parent] of parents) lines.push(`  parent ${name}: ${parent.url.text}${credentialsSource(parent) ? `, Basic credentials from ${credentialsSource(parent)}` : ', no credentials'}`);
  for (const rule of withVia) lines.push(`  rule ${rule.id} (${rule.patterns.map((p) => p.text).join(', ')}): via ${viaText(rule.via ?? [])}`);
  return lines;
}

function parentsJson(config: GatewayConfig, policy: CompiledPolicy): Record<string, unknown> {
  return {
    via: viaText(policy.defaultVia),
    parents: Object.entries(config.upstream.parents).map(([name, parent]) => ({ name, url: parent.url.text, credentials: credentialsSource(parent) })),
    rules: policy.rules.filter((r) => r.via !== null).map((r) => ({ rule: r.id, via: viaText(r.via ?? []) })),
  };
}
