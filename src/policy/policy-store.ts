import { ConfigError } from '../sources/config-error';
import type { Logger } from '../logging/logger';
import { publish } from '../observability/events';
import type { CompiledPolicy } from './types';

export interface ReloadStatus {
  readonly at: Date;
  readonly ok: boolean;
  readonly version: string;
  readonly trigger: string;
  readonly problems: readonly string[];
}

/**
 * The policy in force. A reload compiles and validates the new set first and swaps it in only
 * when it is valid; otherwise the old one stays, and the error is logged with file and line.
 * There is no state in which no policy (or an allow-everything one) is in force.
 * Running flows keep the decision they got; only new flows see a new policy.
 */
export class PolicyStore {
  private policy: CompiledPolicy;
  private status: ReloadStatus;

  constructor(
    private readonly compile: () => CompiledPolicy,
    private readonly logger: Logger,
  ) {
    this.policy = compile();
    this.status = { at: new Date(), ok: true, version: this.policy.version, trigger: 'start', problems: [] };
  }

  get current(): CompiledPolicy {
    return this.policy;
  }

  get lastReload(): ReloadStatus {
    return this.status;
  }

  reload(trigger: string): ReloadStatus {
    const previous = this.policy.version;
    try {
      const next = this.compile();
      this.policy = next;
      this.status = { at: new Date(), ok: true, version: next.version, trigger, problems: [] };
      if (next.version === previous) this.logger.info({ trigger, policy_version: next.version }, 'policy reloaded: unchanged');
      else this.logger.info({ trigger, policy_version: next.version, previous_version: previous, rules: next.rules.length }, 'policy reloaded');
    } catch (err) {
      const problems = err instanceof ConfigError ? err.message.split('\n') : [(err as Error).message];
      this.status = { at: new Date(), ok: false, version: previous, trigger, problems };
      this.logger.error({ trigger, policy_version: previous, problems }, 'policy reload failed; the previous policy stays in force');
    }
    publish('tollgate:policy:reloaded', { ok: this.status.ok, version: this.status.version });
    return this.status;
  }
}
