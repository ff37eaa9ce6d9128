import { GatewayError } from '../errors/gateway-error';
import { type ConfigProblem, formatProblem } from './yaml-source';

/** A configuration or policy set that cannot be used, with every problem found, located. */
export class ConfigError extends GatewayError {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super('TG_ERR_CONFIG', 'config', problems.map(formatProblem).join('\n'));
  }
}
