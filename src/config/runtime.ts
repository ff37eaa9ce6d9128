import path from 'node:path';
import type { FailureCounter } from '../identity/failure-throttle';
import { UserStore } from '../identity/user-store';
import type { Logger } from '../logging/logger';
import { withProgress } from '../logging/progress';
import { loadPolicy } from '../policy/load-policy';
import type { Action, CompiledPolicy } from '../policy/types';
import { ConfigError } from '../sources/config-error';
import { type CertificateAuthority, loadOrCreateAuthority } from '../tls/ca';
import { loadConfig } from './load-config';
import type { GatewayConfig } from './schema';

/**
 * What the configuration loads at start and on reload: the policy, the users file and the CA.
 * Used by the gateway, by the primary of several workers, and by the CLI verbs that read the
 * same files the gateway would.
 */

/** Actions this build can carry out; a policy asking for another is refused at load. */
export const SUPPORTED_ACTIONS: readonly Action[] = ['deny', 'splice', 'inspect'];

/** `authConfigured` comes from the running configuration: auth changes need a restart. */
function compilePolicyFor(config: GatewayConfig, authConfigured: boolean): CompiledPolicy {
  return loadPolicy(config.policiesDir, {
    defaultAction: config.defaultAction,
    allowedPorts: config.allowedPorts,
    supportedActions: SUPPORTED_ACTIONS,
    authConfigured,
    parents: new Set(Object.keys(config.upstream.parents)),
    defaultVia: config.upstream.via,
  });
}

/** Configuration sections a reload cannot change in a running process. */
const RESTART_SECTIONS = ['workers', 'listen', 'transparent', 'ca', 'upstream', 'http', 'cache', 'limits', 'audit', 'pinning', 'auth', 'log', 'pac', 'flowView', 'state'] as const;

function sectionsNeedingRestart(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_SECTIONS.filter((key) => JSON.stringify(running[key]) !== JSON.stringify(next[key]));
}

/**
 * The policy compiler of a running gateway: the first compile uses the configuration it was
 * started with; reloads re-read its file (a broken file fails the reload like a broken policy
 * does) and warn about sections only a restart applies.
 */
export function policyCompiler(config: GatewayConfig, authConfigured: boolean, logger: Logger): () => CompiledPolicy {
  let reloading = false;
  return () => {
    const next = reloading ? loadConfig(config.sourcePath) : config;
    reloading = true;
    const restart = sectionsNeedingRestart(config, next);
    if (restart.length > 0) logger.warn({ sections: restart }, 'configuration changes in these sections take effect after a restart');
    return compilePolicyFor(next, authConfigured);
  };
}

/**
 * Loads the users file when one is configured; throws ConfigError (file and line) if invalid.
 * `counter`: where failed authentications are counted when not in this process (state.redis).
 */
export function loadUsers(config: GatewayConfig, logger: Logger, counter?: FailureCounter): UserStore | null {
  const { auth } = config;
  if (auth.usersFile === null) return null;
  if (path.dirname(auth.usersFile) === config.policiesDir) {
    // Every *.yaml file there is read as a policy file.
    throw new ConfigError([{ file: config.sourcePath, line: null, path: 'auth.users_file', message: 'the users file may not be in the policy directory; move it next to the configuration file' }]);
  }
  const store = UserStore.load({ file: auth.usersFile, maxFailures: auth.maxFailures, failureWindowMs: auth.failureWindowMs, cacheTtlMs: auth.cacheTtlMs, ...(counter ? { counter } : {}) }, logger);
  logger.info({ users_file: auth.usersFile, users: store.userCount, users_version: store.version, realm: auth.realm }, 'proxy authentication on: users loaded');
  return store;
}

/**
 * Loads the configured CA, generating it on first start (and saying where to find it for
 * clients). Shared by a gateway and by the primary of several workers, which creates the CA
 * before they start so they do not race to generate their own.
 */
export async function loadGatewayAuthority(config: GatewayConfig, logger: Logger): Promise<CertificateAuthority> {
  const { authority, created } = await withProgress(
    logger,
    'loading the gateway CA (generating it on first start)',
    loadOrCreateAuthority({
      certPath: config.ca.cert,
      keyPath: config.ca.key,
      chainPath: config.ca.chain,
      keyType: config.ca.keyType,
      logger,
    }),
  );
  if (created) logger.info({ cert: config.ca.cert }, 'install this CA certificate on clients (tollgate ca export)');
  return authority;
}
