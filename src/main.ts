import { runCaExport } from './cli/ca-export';
import { runCheck } from './cli/check';
import { runExplain } from './cli/explain';
import { runPinningReport } from './cli/pinning-report';
import { type ParsedArgs, UsageError, parseArgs, stringFlag } from './cli/args';
import { runGateway } from './cli/run';
import { ConfigError } from './config/config-error';
import { isGatewayError } from './errors/gateway-error';

const DEFAULT_CONFIG = 'tollgate.yaml';

const HELP: Readonly<Record<string, string>> = {
  main: `Usage: tollgate [--config FILE]          run the gateway
       tollgate check [--config FILE]    validate configuration and policies, print the rule table
       tollgate explain URL|HOST:PORT [--user NAME] [--config FILE]
                                         show which rule decides a destination, and why
       tollgate pinning [--config FILE]  names whose minted certificates clients reject (pinning)
       tollgate ca export [--format pem|der] [--config FILE]
                                         print the gateway CA certificate for client installation

Options:
  --config FILE   configuration file (default: ${DEFAULT_CONFIG})
  --help          show help for a command`,
  check: `Usage: tollgate check [--config FILE]

Validates the configuration file and every policy file it points to, then prints the compiled
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
      runExplain(configPath(args), destination, user === undefined ? null : { user, groups: [] }, (line) => process.stdout.write(`${line}\n`));
      return 0;
    }
    case 'pinning': {
      const args = parseArgs(rest, { config: true, help: false });
      if (args.flags.has('help')) return usage('pinning');
      runPinningReport(configPath(args), (line) => process.stdout.write(`${line}\n`));
      return 0;
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
    case 'help':
      return usage('main');
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function usage(topic: string): number {
  process.stdout.write(`${HELP[topic]}\n`);
  return 0;
}

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
