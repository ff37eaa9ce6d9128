import { loadConfig } from '../config/load-config';
import { loadUsersFile } from '../identity/users-file';
import { loadPolicy } from '../policy/load-policy';
import type { CompiledPolicy, PolicyRule } from '../policy/types';
import { formatHttpRules, formatRuleTable } from '../policy/rule-table';
import { SUPPORTED_ACTIONS } from '../config/runtime';

/** `tollgate check`: validate the configuration and every policy file; print the rule table. */
export function runCheck(configPath: string, out: (line: string) => void): void {
  const config = loadConfig(configPath);
  const users = config.auth.usersFile === null ? null : loadUsersFile(config.auth.usersFile);
  const policy = loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
    authConfigured: users !== null,
  });
  out(`configuration ${configPath}: ok`);
  if (users === null) out('users: none (auth.users_file is not set; clients are not authenticated)');
  else {
    const groups = new Set([...users.users.values()].flatMap((u) => u.groups));
    out(`users ${config.auth.usersFile}: ${users.users.size} users in ${groups.size} groups, version ${users.version}; proxy authentication required (realm "${config.auth.realm}")`);
  }
  out(`policies ${config.policiesDir}: ${policy.rules.length} rules, version ${policy.version}`);
  out(`default_action: ${policy.defaultAction}`);
  out(`allowed_ports: tunnel ${config.allowedPorts.tunnel.join(',') || '(none)'}; http ${config.allowedPorts.http.join(',') || '(none)'}`);
  for (const line of describePinning(policy, config.pinning.mode, config.pinning.minClients)) out(line);
  out('');
  out('Rules, most specific first (the first row that matches a destination decides):');
  out(formatRuleTable(policy));
  const http = formatHttpRules(policy);
  if (http !== '') {
    out('');
    out('HTTP rules and upload inspection, tried in this order for each request (allow and deny end the evaluation):');
    out(http);
  }
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
