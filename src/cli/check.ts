import { loadConfig } from '../config/load';
import { loadUsersFile } from '../identity/users-file';
import { loadPolicy } from '../policy/load';
import { formatHttpRules, formatRuleTable } from '../policy/rule-table';
import { SUPPORTED_ACTIONS } from '../gateway';

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
