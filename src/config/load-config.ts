import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../sources/config-error';
import { type GatewayConfig, configSchema } from './schema';
import { parseYaml, problemsFromIssues } from '../sources/yaml-source';

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** Validates configuration text; relative paths resolve against the file's directory. */
export function parseConfig(text: string, sourcePath: string): GatewayConfig {
  const absolute = path.resolve(sourcePath);
  const display = path.relative(process.cwd(), absolute) || absolute;
  const yaml = parseYaml(display, text);
  if (!yaml.ok) throw new ConfigError(yaml.problems);
  // An empty file is a configuration with every default.
  const value = yaml.source.value ?? {};
  const result = configSchema(path.dirname(absolute)).safeParse(value);
  if (!result.success) throw new ConfigError(problemsFromIssues(yaml.source, result.error.issues));
  return deepFreeze({ ...result.data, sourcePath: absolute });
}

/** Reads and validates a configuration file into a frozen, typed object. */
export function loadConfig(file: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError([{ file, line: null, path: '', message: `cannot read configuration: ${reason} (pass another file with --config FILE)` }]);
  }
  return parseConfig(text, file);
}

/**
 * A gateway that is to run must listen for client traffic somewhere: a configuration without
 * any such listener (an empty file, a typo in `listen`) would start, log "ready" and serve
 * nothing. The admin listener alone does not count.
 */
export function requireTrafficListener(config: GatewayConfig): void {
  const { explicit, socks, transparentTls, transparentHttp, reverse, reverseHttp } = config.listen;
  if ([explicit, socks, transparentTls, transparentHttp, reverse, reverseHttp].some((address) => address !== null)) return;
  const file = path.relative(process.cwd(), config.sourcePath) || config.sourcePath;
  throw new ConfigError([
    {
      file,
      line: null,
      path: 'listen',
      message: 'no listener for client traffic: set listen.explicit (such as 127.0.0.1:3128), or listen.socks, transparent_tls, transparent_http, reverse or reverse_http',
    },
  ]);
}
