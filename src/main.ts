import { runCaExport } from './cli/ca-export';
import { runCheck } from './cli/check';
import { runExplain } from './cli/explain';
import { runPinningReport } from './cli/pinning-report';
import { parseAdminUrls, runStatus } from './cli/status';
import { type ParsedArgs, UsageError, parseArgs, stringFlag } from './cli/args';
import { runGateway } from './cli/run';
import { promptPassword, readPasswordFromStdin, runUserAdd, runUserList, runUserRemove } from './cli/user';
import { ConfigError } from './sources/config-error';
import { isGatewayError } from './errors/gateway-error';

const DEFAULT_CONFIG = 'tollgate.yaml';

const HELP: Readonly<Record<string, string>> = {
  main: `Usage: tollgate [--config FILE]          run the gateway
       tollgate check [--config FILE]    validate configuration, policies and users file; print the rule table
       tollgate explain URL|HOST:PORT [--user NAME] [--config FILE]
                                         show which rule decides a destination, and why
       tollgate pinning [--config FILE]  names whose minted certificates clients reject (pinning)
       tollgate status --admin URL[,URL...]
                                         a running replica's version, policy, uptime, open flows
                                         and listeners, from its admin listener; compares several
       tollgate ca export [--format pem|der] [--config FILE]
                                         print the gateway CA certificate for client installation
       tollgate user add|remove|list ...  manage the users file for proxy authentication

Options:
  --config FILE   configuration file (default: ${DEFAULT_CONFIG})
  --help          show help for a command`,
  check: `Usage: tollgate check [--config FILE]

Validates the configuration file, every policy file it points to and the users file
(auth.users_file), then prints the compiled
rule table in precedence order. Exits 0 when everything is valid, 2 otherwise, naming the file,
line and key of each problem.`,
  explain: `Usage: tollgate explain URL|HOST:PORT [--user NAME] [--config FILE]

Shows which policy rule decides a destination and why, using the files on disk, without starting
the gateway. A URL (http://host/path or https://host/path) is explained as the request a client
would send; HOST:PORT as a CONNECT tunnel. --user decides as that user (groups from the users
file). For inspected destinations the HTTP rules are listed in the order they are tried.`,
  pinning: `Usage: tollgate pinning [--config FILE]

Prints the certificate-pinning report the running gateway keeps in pinning.state_file: names
whose minted certificates clients rejected, how many distinct clients did, and which names are
currently spliced because of it (pinning.mode: auto_splice).`,
  status: `Usage: tollgate status --admin URL[,URL...]

Asks running replicas' admin listeners (listen.admin, e.g. http://127.0.0.1:9090) for their
version, policy version and last reload, uptime, open flows (client connections), listeners,
readiness and warnings, and prints them; with several URLs it says whether they agree on version
and policy, as after a rollout. Exits 1 when a replica does not answer or is not ready, or when
versions or policies differ.`,
  user: `Usage: tollgate user add NAME [--groups a,b] [--password-stdin] [--users-file FILE] [--config FILE]
       tollgate user remove NAME [--users-file FILE] [--config FILE]
       tollgate user list [--users-file FILE] [--config FILE]

Manages the users file for proxy authentication (auth.users_file of the configuration, or
--users-file). Run "tollgate user add --help" and so on for each.`,
  'user add': `Usage: tollgate user add NAME [--groups a,b] [--password-stdin] [--users-file FILE] [--config FILE]

Adds a user, or sets a new password for an existing one, in the users file (auth.users_file of
the configuration, or --users-file FILE; created when missing). The password is read from the
terminal without echo, twice, or with --password-stdin from standard input (one line; a final
newline is dropped). Only an scrypt hash is stored. --groups replaces the user's groups;
without it a new user has none and an existing user keeps theirs. The file is rewritten
atomically with mode 0600, keeping its comments; a running gateway reloads it by itself.`,
  'user remove': `Usage: tollgate user remove NAME [--users-file FILE] [--config FILE]

Removes a user from the users file. Exits 1 when there is no such user.`,
  'user list': `Usage: tollgate user list [--users-file FILE] [--config FILE]

Validates the users file and lists its users and their groups (never the hashes).`,
  ca: `Usage: tollgate ca export [--format pem|der] [--config FILE]

Prints the gateway's CA certificate (PEM by default, DER with --format der) so it can be
installed as a trusted root on client devices. Generates the CA first if it does not exist yet.
The private key is never printed.`,
};

function configPath(args: ParsedArgs): string {
  return stringFlag(args, 'config') ?? DEFAULT_CONFIG;
}

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'run';
  const rest = command === 'run' && argv[0] !== 'run' ? argv : argv.slice(1);
  switch (command) {
    case 'run': {
      const args = parseArgs(rest, { config: true, help: false });
      if (args.flags.has('help')) return usage('main');
      if (args.positionals.length > 0) throw new UsageError(`unknown command "${args.positionals[0]}"`);
      return runGateway(configPath(args));
    }
    case 'check': {
      const args = parseArgs(rest, { config: true, help: false });
      if (args.flags.has('help')) return usage('check');
      runCheck(configPath(args), (line) => process.stdout.write(`${line}\n`));
      return 0;
    }
    case 'explain': {
      const args = parseArgs(rest, { config: true, user: true, help: false });
      if (args.flags.has('help')) return usage('explain');
      const destination = args.positionals[0];
      if (destination === undefined || args.positionals.length > 1) throw new UsageError('explain takes one destination: a URL or HOST:PORT');
      const user = stringFlag(args, 'user');
      runExplain(configPath(args), destination, user ?? null, (line) => process.stdout.write(`${line}\n`));
      return 0;
    }
    case 'pinning': {
      const args = parseArgs(rest, { config: true, help: false });
      if (args.flags.has('help')) return usage('pinning');
      runPinningReport(configPath(args), (line) => process.stdout.write(`${line}\n`));
      return 0;
    }
    case 'status': {
      const args = parseArgs(rest, { admin: true, help: false });
      if (args.flags.has('help')) return usage('status');
      const admin = stringFlag(args, 'admin');
      if (admin === undefined || args.positionals.length > 0) throw new UsageError('status takes --admin URL[,URL...]');
      return runStatus(parseAdminUrls(admin), (line) => process.stdout.write(`${line}\n`));
    }
    case 'ca': {
      const args = parseArgs(rest, { config: true, format: true, help: false });
      if (args.flags.has('help')) return usage('ca');
      if (args.positionals[0] !== 'export') throw new UsageError('expected "tollgate ca export"');
      const format = stringFlag(args, 'format') ?? 'pem';
      if (format !== 'pem' && format !== 'der') throw new UsageError('--format must be pem or der');
      await runCaExport(configPath(args), format, (data) => process.stdout.write(data));
      return 0;
    }
    case 'user':
      return runUser(rest);
    case 'help':
      return usage('main');
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

async function runUser(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, { config: true, 'users-file': true, groups: true, 'password-stdin': false, help: false });
  const [sub, name, ...extra] = args.positionals;
  if (sub === undefined) {
    if (args.flags.has('help')) return usage('user');
    throw new UsageError('expected "tollgate user add|remove|list"');
  }
  if (sub !== 'add' && sub !== 'remove' && sub !== 'list') throw new UsageError(`unknown user command "${sub}" (add, remove or list)`);
  if (args.flags.has('help')) return usage(`user ${sub}`);
  const input = { configPath: configPath(args), usersFile: stringFlag(args, 'users-file'), out: (line: string) => process.stdout.write(`${line}\n`) };
  if (sub === 'list') {
    if (name !== undefined) throw new UsageError('user list takes no arguments');
    runUserList(input);
    return 0;
  }
  if (name === undefined || extra.length > 0) throw new UsageError(`user ${sub} takes one user name`);
  if (sub === 'remove') {
    if (args.flags.has('groups') || args.flags.has('password-stdin')) throw new UsageError('user remove takes no --groups or --password-stdin');
    return runUserRemove(input, name) ? 0 : 1;
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
  return 0;
}

function usage(topic: string): number {
  process.stdout.write(`${HELP[topic]}\n`);
  return 0;
}

// `tollgate check | head -1`: the reader went away, which is not an error of ours. Commands
// that print stop quietly; the gateway itself logs through its own stream and keeps serving.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (process.argv[2] !== undefined && !process.argv[2].startsWith('-') && process.argv[2] !== 'run') process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // People get the message, not a stack trace: every expected failure is typed.
    if (err instanceof UsageError) {
      process.stderr.write(`tollgate: ${err.message}\n\n${HELP.main}\n`);
      process.exitCode = 2;
    } else if (err instanceof ConfigError) {
      process.stderr.write(`tollgate: invalid configuration:\n${err.message}\n`);
      process.exitCode = 2;
    } else if (isGatewayError(err)) {
      process.stderr.write(`tollgate: ${err.message} [${err.code}]\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`tollgate: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
