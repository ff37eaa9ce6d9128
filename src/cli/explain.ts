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
import type { Decision, FrontendKind } from '../policy/types';
import { parseConnectAuthority, parseHostAndOptionalPort, targetText, type Target } from '../protocol/target';
import { ReverseRouter } from '../frontends/reverse-routes';
import { REVERSE_FRONTEND } from '../frontends/reverse';

/** What `explain` is asked: a destination, and how a client would reach it. */
export interface ExplainRequest {
  readonly destination: string;
  readonly user: string | null;
  /** --frontend as given, or null for the explicit proxy. */
  readonly frontend: string | null;
  /** --method; GET when a URL is given without it. */
  readonly method: string | null;
  /** --header values, "Name: value". */
  readonly headers: readonly string[];
}

interface ExplainTarget {
  readonly target: Target;
  readonly frontend: FrontendKind;
  readonly how: string;
  /** Request path (with query) for HTTP rules, when a URL was given. */
  readonly path: string | null;
}

/** Front-ends by what the destination is: a plain http:// URL, or a tunnel (https://, host:port). */
const PLAIN: Readonly<Record<string, FrontendKind>> = { explicit: 'explicit-http', 'explicit-http': 'explicit-http', transparent: 'transparent-http', 'transparent-http': 'transparent-http' };
const TUNNEL: Readonly<Record<string, FrontendKind>> = {
  explicit: 'explicit-connect',
  'explicit-connect': 'explicit-connect',
  socks: 'socks',
  transparent: 'transparent-tls',
  'transparent-tls': 'transparent-tls',
};
const HOW: Readonly<Record<FrontendKind, string>> = {
  'explicit-http': 'plain HTTP request to the explicit proxy',
  'explicit-connect': 'CONNECT tunnel',
  socks: 'SOCKS tunnel',
  'transparent-tls': 'redirected TLS connection (transparent, by SNI)',
  'transparent-http': 'redirected HTTP request (transparent, by Host)',
  reverse: 'request to the reverse-proxy listener (by route)',
  'socks-udp': 'SOCKS5 UDP datagram (relayed, never decrypted)',
};

function pickFrontend(given: string | null, plain: boolean): FrontendKind {
  const table = plain ? PLAIN : TUNNEL;
  const frontend = table[given ?? 'explicit'];
  if (frontend) return frontend;
  const known = 'explicit, socks, transparent (or explicit-http, explicit-connect, transparent-tls, transparent-http)';
  if (given !== null && ((plain ? TUNNEL : PLAIN)[given] || given === 'socks')) {
    throw new UsageError(`--frontend ${given} does not carry ${plain ? 'a plain http:// request' : 'an https:// URL or a tunnel'} (use ${Object.keys(table).join(', ')})`);
  }
  throw new UsageError(`unknown --frontend "${given}" (${known})`);
}

function parseTarget(arg: string, frontendFlag: string | null): ExplainTarget {
  const udp = parseUdpTarget(arg, frontendFlag);
  if (udp) return udp;
  const url = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/i.exec(arg);
  if (url) {
    const scheme = url[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw new UsageError(`unsupported scheme "${scheme}" (http or https)`);
    const parsed = parseHostAndOptionalPort(url[2]!, scheme === 'https' ? 443 : 80);
    if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason}`);
    const path = url[3] === '' ? '/' : url[3]!;
    const frontend = pickFrontend(frontendFlag, scheme === 'http');
    return { target: parsed.target, frontend, how: scheme === 'https' ? `${HOW[frontend]} (https)` : HOW[frontend], path };
  }
  const parsed = parseConnectAuthority(arg.includes(':') ? arg : `${arg}:443`);
  if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason} (give a URL or host:port)`);
  const frontend = pickFrontend(frontendFlag, false);
  return { target: parsed.target, frontend, how: HOW[frontend], path: null };
}

/**
 * `udp://host:port` (port 53 when left out): a SOCKS5 UDP ASSOCIATE datagram, decided with
 * `allowed_ports.udp`. UDP is never decrypted, so splice and inspect both mean "relayed".
 */
function parseUdpTarget(arg: string, frontendFlag: string | null): ExplainTarget | null {
  const udp = /^udp:\/\/([^/?#]*)\/?$/i.exec(arg);
  if (!udp) return null;
  if (frontendFlag !== null && frontendFlag !== 'socks') throw new UsageError(`--frontend ${frontendFlag} does not carry UDP (only socks, the default for udp://)`);
  const parsed = parseHostAndOptionalPort(udp[1]!, 53);
  if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason}`);
  return { target: parsed.target, frontend: 'socks-udp', how: HOW['socks-udp'], path: null };
}

/** A user's principal from the users file, so group-limited rules are explained as they apply. */
function principalFor(usersFile: string | null, user: string): Principal {
  if (usersFile === null) throw new UsageError('--user needs users: the configuration sets no auth.users_file');
  const entry = loadUsersFile(usersFile).users.get(user);
  if (!entry) throw new UsageError(`no user "${user}" in ${usersFile}`);
  return { user: entry.name, groups: entry.groups };
}

/** "Name: value" -> [name, value]. */
function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon).trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new UsageError(`--header "${text}": expected "Name: value"`);
  return [name, text.slice(colon + 1).trim()];
}

/** What the HTTP rules say about the one request a URL stands for. */
interface RequestVerdict {
  readonly method: string;
  readonly path: string;
  readonly canonicalPath: string | null;
  /** allow: no allow/deny rule matched, or an allow did; deny: an HTTP rule denies; refused: 400. */
  readonly verdict: 'allow' | 'deny' | 'refused';
  readonly httpRule: string | null;
  readonly reason: string | null;
  readonly flaggedBy: readonly string[];
  readonly responseRules: readonly string[];
}

export interface Explanation {
  readonly destination: string;
  readonly kind: string;
  readonly how: string;
  readonly frontend: FrontendKind;
  readonly principal: Principal | null;
  readonly decision: Decision;
  readonly httpRules: readonly { readonly id: string; readonly action: string; readonly description: string }[];
  readonly uploads: string | null;
  readonly request: RequestVerdict | null;
  /** The answer: deny when the destination or an HTTP rule denies, else the destination's action. */
  readonly result: 'deny' | 'splice' | 'inspect';
  /** The way out: parents in failover order with their URLs ([] direct); null when nothing leaves. */
  readonly via: readonly { readonly name: string; readonly url: string }[] | null;
}

/**
 * `tollgate explain <url or host:port>`: which rule decides a destination and why, from the
 * files on disk, without starting the gateway; for a URL to an inspected destination, what the
 * HTTP rules do with the request (method and headers as given).
 */
export function explain(configPath: string, ask: ExplainRequest): Explanation {
  if (ask.frontend === 'reverse') return explainReverse(configPath, ask);
  const { target, frontend, how, path } = parseTarget(ask.destination, ask.frontend);
  if (path === null && (ask.method !== null || ask.headers.length > 0)) throw new UsageError('--method and --header describe an HTTP request: give a URL (http:// or https://)');
  const headers = ask.headers.flatMap(parseHeader);
  const config = loadConfig(configPath);
  const authConfigured = config.auth.usersFile !== null;
  const policy = loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
    authConfigured,
    parents: new Set(Object.keys(config.upstream.parents)),
    defaultVia: config.upstream.via,
  });
  const principal = ask.user === null ? null : principalFor(config.auth.usersFile, ask.user);
  const tunnel = frontend !== 'explicit-http' && frontend !== 'transparent-http';
  const sni = tunnel && target.host.kind === 'name' ? target.host : null;
  const decision = decide({ target: target.host, port: target.port, sni, frontend, principal }, policy);
  const rule = decision.rule;
  let request: RequestVerdict | null = null;
  // HTTP rules see requests the gateway reads: plain HTTP, and HTTPS when inspected.
  const seesRequests = decision.action !== 'deny' && (!tunnel || decision.action === 'inspect');
  if (path !== null && rule && rule.http.length > 0 && seesRequests) {
    const method = (ask.method ?? 'GET').toUpperCase();
    const ruled = ruleTarget(path, { allowEncodedSlashes: rule.allowEncodedSlashes });
    if (!ruled.ok) {
      request = { method, path, canonicalPath: null, verdict: 'refused', httpRule: null, reason: ruled.reason, flaggedBy: [], responseRules: [] };
    } else {
      const result = evaluateRequest(rule.http, requestFacts(method, ruled.path, ruled.query, headers, 0));
      const verdict = result.verdict;
      request = {
        method,
        path,
        canonicalPath: ruled.path,
        verdict: verdict?.action === 'deny' ? 'deny' : 'allow',
        httpRule: verdict?.rule.id ?? null,
        reason: verdict?.action === 'deny' ? (verdict.rule.reason ?? `HTTP rule ${verdict.rule.id} denies this request`) : null,
        flaggedBy: result.logged,
        responseRules: result.responseRules.map((r) => r.id),
      };
    }
  }
  const denied = decision.action === 'deny' || (request !== null && request.verdict !== 'allow');
  return {
    destination: targetText(target),
    kind: target.host.kind === 'name' ? 'name' : `${target.host.kind} address`,
    how,
    frontend,
    principal,
    decision,
    httpRules: (rule?.http ?? []).map((h) => ({ id: h.id, action: h.action, description: describeHttpRule(h).replace(/\s+/, ' ') })),
    uploads: rule?.dlp ? describeDlp(rule.dlp) : null,
    request,
    result: denied ? 'deny' : (decision.action as 'splice' | 'inspect'),
    via: decision.action === 'deny' ? null : (decision.via ?? []).map((name) => ({ name, url: config.upstream.parents[name]?.url.text ?? '?' })),
  };
}

export function printExplanation(e: Explanation, out: (line: string) => void): void {
  out(`destination:    ${e.destination} (${e.kind}), as a ${e.how}`);
  if (isReverseExplanation(e)) printRoute(e, out);
  if (e.principal) out(`user:           ${e.principal.user}${e.principal.groups.length > 0 ? ` (groups: ${e.principal.groups.join(', ')})` : ''}`);
  out(`decision:       ${e.decision.action}`);
  if (e.frontend === 'socks-udp' && e.decision.action !== 'deny') out('                UDP is never decrypted: splice and inspect both relay the datagrams and audit them');
  const rule = e.decision.rule;
  out(`decided by:     ${rule ? `rule ${rule.id} (${rule.file}:${rule.line}), pattern ${e.decision.pattern}` : 'default_action (no rule matches)'}`);
  out(`reason:         ${e.decision.reason}`);
  out(`policy version: ${e.decision.policyVersion}`);
  if (e.via !== null) out(`leaves:         ${e.via.length === 0 ? 'direct' : `through ${e.via.map((p) => `parent proxy ${p.name} (${p.url})`).join(', then ')}`}`);
  if (e.uploads) out(`uploads:        ${e.uploads}`);
  if (e.httpRules.length > 0) {
    out('');
    out('HTTP rules for this destination, in the order they are tried:');
    e.httpRules.forEach((h, i) => {
      out(`  ${i + 1}. ${h.description}`);
    });
  }
  const r = e.request;
  if (r) {
    out('');
    const what = `A ${r.method} of ${r.path}`;
    if (r.verdict === 'refused') out(`${what}: refused (400): ${r.reason}`);
    else {
      if (r.canonicalPath !== null && r.canonicalPath !== r.path.split('?')[0]) out(`The rules see the path as ${r.canonicalPath}.`);
      const verdict = r.verdict === 'deny' ? `denied by ${r.httpRule}` : r.httpRule ? `allowed by ${r.httpRule}` : 'allowed (no allow/deny rule matches)';
      out(
        `${what}: ${verdict}${r.flaggedBy.length > 0 ? `; flagged by ${r.flaggedBy.join(', ')}` : ''}${r.responseRules.length > 0 ? `; response rules still apply: ${r.responseRules.join(', ')}` : ''}`,
      );
    }
  }
  out('');
  out(`result:         ${e.result}`);
}

export function explanationJson(e: Explanation): Record<string, unknown> {
  const rule = e.decision.rule;
  return {
    ...(isReverseExplanation(e) ? { reverse: e.reverse } : {}),
    destination: e.destination,
    kind: e.kind,
    frontend: e.frontend,
    user: e.principal ? { name: e.principal.user, groups: e.principal.groups } : null,
    decision: {
      action: e.decision.action,
      code: e.decision.code,
      rule: rule?.id ?? null,
      file: rule?.file ?? null,
      line: rule?.line ?? null,
      pattern: e.decision.pattern,
      reason: e.decision.reason,
      policy_version: e.decision.policyVersion,
    },
    http_rules: e.httpRules,
    uploads: e.uploads,
    request: e.request && {
      method: e.request.method,
      path: e.request.path,
      canonical_path: e.request.canonicalPath,
      verdict: e.request.verdict,
      http_rule: e.request.httpRule,
      reason: e.request.reason,
      flagged_by: e.request.flaggedBy,
      response_rules: e.request.responseRules,
    },
    result: e.result,
    via: e.via === null ? null : e.via.length === 0 ? 'direct' : e.via.map((p) => p.name).join(','),
    parents: e.via ?? [],
  };
}

/** What the reverse-proxy listener does with a URL: its route and backend, or 421. */
export interface ReverseExplanation extends Explanation {
  readonly reverse: { readonly route: string; readonly backend: string; readonly ca_file: string | null } | { readonly route: null; readonly status: 421; readonly reason: string };
}

function isReverseExplanation(e: Explanation): e is ReverseExplanation {
  return 'reverse' in e;
}

/**
 * `explain --frontend reverse URL`: the route the URL's host and path take on the reverse-proxy
 * listener (frontends/reverse-routes.ts), then the policy decision on that host, as the
 * listener makes it (the port policy sees is the URL's).
 */
function explainReverse(configPath: string, ask: ExplainRequest): ReverseExplanation {
  const url = /^(https?):\/\/([^/?#]*)([^#]*)/i.exec(ask.destination);
  if (!url) throw new UsageError('--frontend reverse explains a URL: give http://host/path or https://host/path');
  const parsed = parseHostAndOptionalPort(url[2]!, url[1]!.toLowerCase() === 'https' ? 443 : 80);
  if (!parsed.ok) throw new UsageError(`invalid destination: ${parsed.reason}`);
  const path = url[3] === '' ? '/' : url[3]!;
  const base = explain(configPath, { ...ask, frontend: 'transparent' });
  const route = ReverseRouter.compile(loadConfig(configPath).reverse, configPath).route(parsed.target.host, path);
  const how = `request to the reverse-proxy listener (${url[1]!.toLowerCase()})`;
  if (!route) {
    const reason = 'no route in reverse.routes serves this host and there is no reverse.default_route';
    return { ...base, how, frontend: REVERSE_FRONTEND, reverse: { route: null, status: 421, reason }, result: 'deny' };
  }
  return { ...base, how, frontend: REVERSE_FRONTEND, reverse: { route: route.route, backend: route.backend, ca_file: route.caFile } };
}

function printRoute(e: ReverseExplanation, out: (line: string) => void): void {
  const r = e.reverse;
  if (r.route === null) out(`route:          none: 421 Misdirected Request (${r.reason})`);
  else out(`route:          ${r.route} -> ${r.backend}${r.ca_file ? ` (verified with ${r.ca_file})` : r.backend.startsWith('https:') ? ' (verified with upstream.ca_file and the system roots)' : ''}`);
}
