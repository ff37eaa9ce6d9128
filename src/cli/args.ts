/** A small, strict command-line parser: known flags only, so a typo is an error, not a no-op. */

export interface ParsedArgs {
  readonly positionals: readonly string[];
  readonly flags: ReadonlyMap<string, string | true | readonly string[]>;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * What a flag takes: `true` a value, `false` nothing, `'list'` a value and may be repeated
 * (`--header A --header B`).
 */
export type FlagSpec = Readonly<Record<string, boolean | 'list'>>;

/** Options every command accepts, before or after the command's name. */
export const GLOBAL_FLAGS: FlagSpec = { config: true, json: false, help: false, version: false };

/** `spec` maps each flag to what it takes. */
export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true | string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const takes = spec[name];
    if (takes === undefined) throw new UsageError(`unknown option ${eq < 0 ? arg : arg.slice(0, eq)}`);
    if (takes === false) {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`option --${name} needs a value`);
    if (takes === 'list') {
      const list = flags.get(name);
      if (Array.isArray(list)) list.push(value);
      else flags.set(name, [value]);
      continue;
    }
    const earlier = flags.get(name);
    if (earlier !== undefined && earlier !== value) throw new UsageError(`option --${name} is given twice ("${String(earlier)}" and "${value}")`);
    flags.set(name, value);
  }
  return { positionals, flags };
}

/**
 * Splits `tollgate [global options] COMMAND [arguments and options]`: global options may come
 * before the command (`tollgate --config F ca export`) or anywhere after it. Returns the command
 * (null when none is named) and everything after it, with the leading global options folded in.
 */
export function splitCommand(argv: readonly string[], commands: ReadonlySet<string>): { command: string | null; rest: string[] } {
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '-') {
    const arg = argv[i]!;
    const name = arg.replace(/^--?/, '').split('=')[0]!;
    if (GLOBAL_FLAGS[name] === undefined) break;
    leading.push(arg);
    if (GLOBAL_FLAGS[name] !== false && !arg.includes('=') && i + 1 < argv.length) leading.push(argv[++i]!);
    i++;
  }
  const word = argv[i];
  if (word !== undefined && !word.startsWith('-')) {
    if (!commands.has(word)) throw new UsageError(`unknown command "${word}"`);
    return { command: word, rest: [...leading, ...argv.slice(i + 1)] };
  }
  return { command: null, rest: [...leading, ...argv.slice(i)] };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name);
  return typeof value === 'string' ? value : undefined;
}

export function listFlag(args: ParsedArgs, name: string): readonly string[] {
  const value = args.flags.get(name);
  return Array.isArray(value) ? value : [];
}
