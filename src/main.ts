// First, before anything else is loaded: SIGUSR1 must never start Node's inspector.
import './cli/rotation-signal';
import { type FlagSpec, GLOBAL_FLAGS, listFlag, type ParsedArgs, parseArgs, splitCommand, stringFlag, UsageError } from './cli/args';
import { DEFAULT_CONFIG, EXIT, HELP } from './cli/help';
import { isGatewayError } from './errors/gateway-error';
import { BUILD } from './observability/build-info';
import { ConfigError } from './sources/config-error';
import type * as RunCommand from './cli/run';
import type * as CheckCommand from './cli/check';
import type * as ExplainCommand from './cli/explain';
import type * as PinningCommand from './cli/pinning-report';
import type * as CaCommand from './cli/ca-export';
import type * as StatusCommand from './cli/status';
import type * as TailCommand from './cli/tail';
import type * as UserCommand from './cli/user';

/**
 * Commands are loaded when they run: loading the gateway takes most of a second, which
 * `tollgate --version`, `check`, `explain` and `tail` (and the scripts calling them) need not wait.
 */
function load<T>(module: string): T {
  return require(module) as T;
}

/** Each command's own options (the global ones, GLOBAL_FLAGS, are accepted by all). */
const COMMANDS: Readonly<Record<string, FlagSpec>> = {
  run: {},
  check: {},
  explain: { user: true, method: true, header: 'list', frontend: true },
  tail: { follow: false, filter: true, format: true, lines: true, file: true },
  pinning: {},
  status: { admin: true },
  ca: { format: true },
  user: { 'users-file': true, groups: true, 'password-stdin': false },
  help: {},
};

/** Commands that print JSON with --json (status, when it exists, belongs here too). */
const JSON_COMMANDS = new Set(['check', 'explain']);

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function configPath(args: ParsedArgs): string {
  return stringFlag(args, 'config') ?? DEFAULT_CONFIG;
}

function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

async function main(argv: readonly string[]): Promise<number> {
  const { command: named, rest } = splitCommand(argv, new Set(Object.keys(COMMANDS)));
  const command = named ?? 'run';
  const args = parseArgs(rest, { ...GLOBAL_FLAGS, ...COMMANDS[command] });
  const json = args.flags.has('json');
  if (args.flags.has('version')) {
    if (json) printJson({ version: BUILD.version, node: BUILD.node });
    else out(`tollgate ${BUILD.version} (node ${BUILD.node})`);
    return EXIT.ok;
  }
  if (json && !JSON_COMMANDS.has(command)) throw new UsageError(`--json is available for ${[...JSON_COMMANDS].join(', ')} and --version, not for ${command}`);
  if (args.flags.has('help') && command !== 'user') return usage(command === 'run' || command === 'help' ? 'main' : command);
  switch (command) {
    case 'run': {
      if (args.positionals.length > 0) throw new UsageError(`unknown command "${args.positionals[0]}"`);
      const { runGateway } = load<typeof RunCommand>('./cli/run');
      return (await runGateway(configPath(args))) === 0 ? EXIT.ok : EXIT.failure;
    }
    case 'check': {
      if (args.positionals.length > 0) throw new UsageError('check takes no arguments');
      const { checkJson, runCheck } = load<typeof CheckCommand>('./cli/check');
      if (json) printJson(checkJson(configPath(args)));
      else runCheck(configPath(args), out);
      return EXIT.ok;
    }
    case 'explain': {
      const destination = args.positionals[0];
      if (destination === undefined || args.positionals.length > 1) throw new UsageError('explain takes one destination: a URL or HOST:PORT');
      const { explain, explanationJson, printExplanation } = load<typeof ExplainCommand>('./cli/explain');
      const answer = explain(configPath(args), {
        destination,
        user: stringFlag(args, 'user') ?? null,
        frontend: stringFlag(args, 'frontend') ?? null,
        method: stringFlag(args, 'method') ?? null,
        headers: listFlag(args, 'header'),
      });
      if (json) printJson(explanationJson(answer));
      else printExplanation(answer, out);
      return answer.result === 'deny' ? EXIT.no : EXIT.ok;
    }
    case 'tail':
      return tail(args);
    case 'pinning': {
      if (args.positionals.length > 0) throw new UsageError('pinning takes no arguments');
      const { runPinningReport } = load<typeof PinningCommand>('./cli/pinning-report');
      runPinningReport(configPath(args), out);
      return EXIT.ok;
    }
    case 'status': {
      const admin = stringFlag(args, 'admin');
      if (admin === undefined || args.positionals.length > 0) throw new UsageError('status takes --admin URL[,URL...]');
      const { parseAdminUrls, runStatus } = load<typeof StatusCommand>('./cli/status');
      return runStatus(parseAdminUrls(admin), out);
    }
    case 'ca': {
      if (args.positionals[0] !== 'export' || args.positionals.length > 1) throw new UsageError('expected "tollgate ca export"');
      const format = stringFlag(args, 'format') ?? 'pem';
      if (format !== 'pem' && format !== 'der') throw new UsageError('--format must be pem or der');
      const { runCaExport } = load<typeof CaCommand>('./cli/ca-export');
      await runCaExport(configPath(args), format, (data) => process.stdout.write(data));
      return EXIT.ok;
    }
    case 'user':
      return runUser(args);
    default:
      return usage('main');
  }
}

async function tail(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 0) throw new UsageError('tail takes no arguments (the file is --file FILE, or audit.file)');
  const format = stringFlag(args, 'format') ?? 'line';
  if (format !== 'line' && format !== 'json') throw new UsageError('--format must be line or json');
  const linesFlag = stringFlag(args, 'lines');
  if (linesFlag !== undefined && !/^[0-9]{1,9}$/.test(linesFlag)) throw new UsageError('--lines takes a number of records');
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  // Ctrl-C or SIGTERM end a follow cleanly (exit 0), like tail -f ended on purpose.
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const { runTail } = load<typeof TailCommand>('./cli/tail');
  await runTail({
    configPath: configPath(args),
    file: stringFlag(args, 'file'),
    follow: args.flags.has('follow'),
    filter: stringFlag(args, 'filter') ?? '',
    format,
    lines: linesFlag === undefined ? null : Number(linesFlag),
    out,
    warn: (line) => process.stderr.write(`${line}\n`),
    stop: stopped,
  });
  process.removeListener('SIGINT', stop);
  process.removeListener('SIGTERM', stop);
  return EXIT.ok;
}

async function runUser(args: ParsedArgs): Promise<number> {
  const [sub, name, ...extra] = args.positionals;
  if (sub === undefined) {
    if (args.flags.has('help')) return usage('user');
    throw new UsageError('expected "tollgate user add|remove|list"');
  }
  if (sub !== 'add' && sub !== 'remove' && sub !== 'list') throw new UsageError(`unknown user command "${sub}" (add, remove or list)`);
  if (args.flags.has('help')) return usage(`user ${sub}`);
  const { promptPassword, readPasswordFromStdin, runUserAdd, runUserList, runUserRemove } = load<typeof UserCommand>('./cli/user');
  const input = { configPath: configPath(args), usersFile: stringFlag(args, 'users-file'), out };
  if (sub === 'list') {
    if (name !== undefined) throw new UsageError('user list takes no arguments');
    runUserList(input);
    return EXIT.ok;
  }
  if (name === undefined || extra.length > 0) throw new UsageError(`user ${sub} takes one user name`);
  if (sub === 'remove') {
    if (args.flags.has('groups') || args.flags.has('password-stdin')) throw new UsageError('user remove takes no --groups or --password-stdin');
    return runUserRemove(input, name) ? EXIT.ok : EXIT.no;
  }
  const groupsFlag = stringFlag(args, 'groups');
  const groups =
    groupsFlag === undefined
      ? null
      : groupsFlag
          .split(',')
          .map((g) => g.trim())
          .filter((g) => g !== '');
  const readPassword = args.flags.has('password-stdin') ? () => readPasswordFromStdin(process.stdin) : () => promptPassword(process.stdin, process.stderr);
  await runUserAdd(input, name, groups, readPassword);
  return EXIT.ok;
}

function usage(topic: string): number {
  out(HELP[topic] ?? HELP.main!);
  return EXIT.ok;
}

/** Whether this invocation runs the gateway (which logs through its own stream) rather than printing. */
function runsGateway(argv: readonly string[]): boolean {
  try {
    const { command } = splitCommand(argv, new Set(Object.keys(COMMANDS)));
    return command === null || command === 'run';
  } catch {
    return false;
  }
}

// `tollgate check | head -1`: the reader went away, which is not an error of ours. Commands
// that print stop quietly; the gateway itself logs through its own stream and keeps serving.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (!runsGateway(process.argv.slice(2))) process.exit(EXIT.ok);
});

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const json = argv.includes('--json');
    // People get the message, not a stack trace: every expected failure is typed.
    if (err instanceof UsageError) {
      process.stderr.write(`tollgate: ${err.message}\n\n${HELP.main}\n`);
      process.exitCode = EXIT.usage;
    } else if (err instanceof ConfigError) {
      if (json) printJson({ ok: false, problems: err.problems });
      process.stderr.write(`tollgate: invalid configuration:\n${err.message}\n`);
      process.exitCode = EXIT.config;
    } else if (isGatewayError(err)) {
      process.stderr.write(`tollgate: ${err.message} [${err.code}]\n`);
      process.exitCode = EXIT.failure;
    } else {
      process.stderr.write(`tollgate: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.failure;
    }
  },
);
