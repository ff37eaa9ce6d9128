import { UsageError } from './args';
import { loadConfig } from '../config/load-config';
import { SUPPORTED_ACTIONS } from '../config/runtime';
import { describeDlp } from '../policy/dlp/compile-dlp';
import { describeHttpRule } from '../policy/rules/compile-rules';
import { evaluateRequest, requestFacts, ruleTarget } from '../policy/rules/evaluate';
import type { Principal } from '../identity/principal';
import { loadUsersFile } from '../identity/users-file';
import { decide } from '../policy/decide';
import { loadPolicy } from '../policy/load-policy';
import type { FrontendKind } from '../policy/types';
import { parseConnectAuthority, parseHostAndOptionalPort, targetText, type Target } from '../protocol/target';

interface ExplainTarget {
  readonly target: Target;
  readonly frontend: FrontendKind;
  readonly how: string;
  /** Request path for HTTP rules, when a URL was given. */
  readonly path: string | null;
}

function parseTarget(arg: string): ExplainTarget {
  const url = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/i.exec(arg);
  if (url) {
    const scheme = url[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw new UsageError(`unsupported scheme "${scheme}" (http or https)`);
    const parsed = parseHostAndOptionalPort(url[2]!, scheme === 'https' ? 443 : 80);
    if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason}`);
    const path = url[3] === '' ? '/' : url[3]!;
    return scheme === 'https'
      ? { target: parsed.target, frontend: 'explicit-connect', how: 'CONNECT tunnel (https)', path }
      : { target: parsed.target, frontend: 'explicit-http', how: 'plain HTTP request', path };
  }
  const parsed = parseConnectAuthority(arg.includes(':') ? arg : `${arg}:443`);
  if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason} (give a URL or host:port)`);
  return { target: parsed.target, frontend: 'explicit-connect', how: 'CONNECT tunnel', path: null };
}

/** A user's principal from the users file, so group-limited rules are explained as they apply. */
function principalFor(usersFile: string | null, user: string): Principal {
  if (usersFile === null) throw new UsageError('--user needs users: the configuration sets no auth.users_file');
  const entry = loadUsersFile(usersFile).users.get(user);
  if (!entry) throw new UsageError(`no user "${user}" in ${usersFile}`);
  return { user: entry.name, groups: entry.groups };
}

/**
 * `tollgate explain <url or host:port> [--user NAME]`: which rule decides a destination and
 * why, from the files on disk, without starting the gateway.
 */
export function runExplain(configPath: string, destination: string, user: string | null, out: (line: string) => void): void {
  const config = loadConfig(configPath);
  const authConfigured = config.auth.usersFile !== null;
  const policy = loadPolicy(config.policiesDir, { defaultAction: config.defaultAction, allowedPorts: config.allowedPorts, supportedActions: SUPPORTED_ACTIONS, authConfigured });
  const principal = user === null ? null : principalFor(config.auth.usersFile, user);
  const { target, frontend, how, path } = parseTarget(destination);
  const sni = frontend === 'explicit-connect' && target.host.kind === 'name' ? target.host : null;
  const decision = decide({ target: target.host, port: target.port, sni, frontend, principal }, policy);
  out(`destination:    ${targetText(target)} (${target.host.kind === 'name' ? 'name' : `${target.host.kind} address`}), as a ${how}`);
  if (principal) out(`user:           ${principal.user}${principal.groups.length > 0 ? ` (groups: ${principal.groups.join(', ')})` : ''}`);
  out(`decision:       ${decision.action}`);
  const rule = decision.rule;
  out(`decided by:     ${rule ? `rule ${rule.id} (${rule.file}:${rule.line}), pattern ${decision.pattern}` : 'default_action (no rule matches)'}`);
  out(`reason:         ${decision.reason}`);
  out(`policy version: ${decision.policyVersion}`);
  if (rule?.dlp) out(`uploads:        ${describeDlp(rule.dlp)}`);
  if (!rule || rule.http.length === 0) return;
  out('');
  out('HTTP rules for this destination, in the order they are tried:');
  rule.http.forEach((http, i) => {
    out(`  ${i + 1}. ${describeHttpRule(http)}`);
  });
  if (path !== null && decision.action !== 'deny') {
    const target = ruleTarget(path, { allowEncodedSlashes: rule.allowEncodedSlashes });
    out('');
    if (!target.ok) {
      out(`A GET of ${path}: refused (400): ${target.reason}`);
      return;
    }
    const result = evaluateRequest(rule.http, requestFacts('GET', target.path, target.query, [], 0));
    const verdict = result.verdict ? `${result.verdict.action === 'deny' ? 'denied' : 'allowed'} by ${result.verdict.rule.id}` : 'allowed (no allow/deny rule matches)';
    if (target.path !== path.split('?')[0]) out(`The rules see the path as ${target.path}.`);
    out(
      `A GET of ${path}: ${verdict}${result.logged.length > 0 ? `; flagged by ${result.logged.join(', ')}` : ''}${result.responseRules.length > 0 ? `; response rules still apply: ${result.responseRules.map((r) => r.id).join(', ')}` : ''}`,
    );
  }
}
