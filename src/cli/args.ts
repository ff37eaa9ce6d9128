/** A small, strict command-line parser: known flags only, so a typo is an error, not a no-op. */

export interface ParsedArgs {
  readonly positionals: readonly string[];
  readonly flags: ReadonlyMap<string, string | true>;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `spec` maps each flag to whether it takes a value. */
export function parseArgs(argv: readonly string[], spec: Readonly<Record<string, boolean>>): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const takesValue = spec[name];
    if (takesValue === undefined) throw new UsageError(`unknown option ${arg}`);
    if (!takesValue) {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`option --${name} needs a value`);
    flags.set(name, value);
  }
  return { positionals, flags };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name);
  return typeof value === 'string' ? value : undefined;
}
