import { runCaExport } from './cli/ca-export';
import { runCheck } from './cli/check';
import { type ParsedArgs, UsageError, parseArgs, stringFlag } from './cli/args';
import { runGateway } from './cli/run';
import { ConfigError } from './config/config-error';
import { isGatewayError } from './errors/gateway-error';

const DEFAULT_CONFIG = 'tollgate.yaml';

const HELP: Readonly<Record<string, string>> = {
  main: `Usage: tollgate [--config FILE]          run the gateway
       tollgate check [--config FILE]    validate configuration and policies, print the rule table
       tollgate ca export [--format pem|der] [--config FILE]
                                         print the gateway CA certificate for client installation

Options:
  --config FILE   configuration file (default: ${DEFAULT_CONFIG})
  --help          show help for a command`,
  check: `Usage: tollgate check [--config FILE]

Validates the configuration file and every policy file it points to, then prints the compiled
rule table in precedence order. Exits 0 when everything is valid, 2 otherwise, naming the file,
line and key of each problem.`,
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
