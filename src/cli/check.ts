import { loadConfig } from '../config/load';
import { loadPolicy } from '../policy/load';
import { formatHttpRules, formatRuleTable } from '../policy/rule-table';
import { SUPPORTED_ACTIONS } from '../gateway';

/** `tollgate check`: validate the configuration and every policy file; print the rule table. */
export function runCheck(configPath: string, out: (line: string) => void): void {
  const config = loadConfig(configPath);
  const policy = loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
  });
  out(`configuration ${configPath}: ok`);
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
