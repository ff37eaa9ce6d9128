export const DEFAULT_CONFIG = 'tollgate.yaml';

/** Exit codes, the same for every command (documented in the README, "Command line"). */
export const EXIT = {
  ok: 0,
  /** explain: the destination or request is denied; user remove: no such user. */
  no: 1,
  /** Unknown command or option, a missing or malformed argument. */
  usage: 2,
  /** The configuration, a policy file or the users file is invalid or cannot be read. */
  config: 3,
  /** Anything else that failed: the gateway could not start or stopped on an error, the CA, I/O. */
  failure: 4,
} as const;

const EXIT_CODES = `Exit codes: 0 ok (explain: allowed), 1 explain: denied (user remove: no such user; status:
a replica down, not ready or different),
2 usage error, 3 invalid configuration, policy or users file, 4 other failure.`;

export const HELP: Readonly<Record<string, string>> = {
  main: `Usage: tollgate [--config FILE]          run the gateway
       tollgate check [--json]           validate configuration, policies and users file; print the rule table
       tollgate explain URL|HOST:PORT [--method M] [--header 'Name: value']... [--user NAME]
                        [--frontend explicit|socks|transparent] [--json]
                                         which rule decides a destination (and request), and why
       tollgate tail [--follow] [--filter EXPR] [--format line|json] [--file FILE|-]
                                         print audit records as access-log lines or JSON
       tollgate pinning                  names whose minted certificates clients reject (pinning)
       tollgate status --admin URL[,URL...]
                                         running replicas' version, policy, uptime, open flows and
                                         listeners, from their admin listeners; compares several
       tollgate ca export [--format pem|der]
                                         print the gateway CA certificate for client installation
       tollgate user add|remove|list ...  manage the users file for proxy authentication
       tollgate --version [--json]       print the version

Options for every command (before or after its name):
  --config FILE   configuration file (default: ${DEFAULT_CONFIG})
  --json          machine-readable output (check, explain, --version)
  --help          show help for a command

${EXIT_CODES}`,
  check: `Usage: tollgate check [--config FILE] [--json]

Validates the configuration file, every policy file it points to and the users file
(auth.users_file), then prints the compiled rule table in precedence order, with who each rule
applies to (everyone, users, groups), and warns about rules no request can reach (shadowed by a
rule with the same pattern tried before them, or limited to users nobody in the users file is).
--json prints the same as one JSON document; an invalid file gives {"ok": false, "problems": [...]}.
Exits 0 when everything is valid (warnings included), 3 otherwise, naming the file, line and key
of each problem.`,
  explain: `Usage: tollgate explain URL|HOST:PORT [--method M] [--header 'Name: value']... [--user NAME]
                        [--frontend explicit|socks|transparent|reverse] [--config FILE] [--json]

Shows which policy rule decides a destination and why, using the files on disk, without starting
the gateway. A URL (http://host/path or https://host/path) is explained as the request a client
would send (GET unless --method; --header adds request headers, repeatable) and its HTTP rules
are evaluated; HOST:PORT as a tunnel. --frontend says how the client reaches the gateway:
explicit (the default: CONNECT for https and HOST:PORT, a proxied request for http), socks, or
transparent (a redirected connection), or reverse (a request to the reverse-proxy listener: the
route its host and path take, or 421 when none does). --user decides as that user (groups from the users file).
Exits 0 when the answer is allow (splice or inspect, no HTTP rule denying), 1 when it is deny,
2 for a usage error, 3 for an invalid configuration. --json prints the answer as JSON.`,
  tail: `Usage: tollgate tail [--follow] [--filter EXPR] [--format line|json] [--lines N] [--file FILE|-] [--config FILE]

Prints the audit records in audit.file (or FILE; - reads standard input), one per line: as an
access-log line close to Squid's native format (--format line, the default) or as the JSON record
(--format json). --follow keeps printing records as they are written, across log rotation.
--lines N starts with the last N records (default: all; with --follow, 10).
--filter keeps the records that match every term of EXPR, such as
  'action=deny'  'user=alice'  'status>=400'  'name=*.example.com'  'type=request rule=storage'
Terms: FIELD=VALUE (glob with *, several values with commas), FIELD!=VALUE, and <, <=, >, >=
for numbers. name matches the destination (host, target or sni); other fields are audit field
names (docs/audit.md). The line format is described in docs/audit.md.`,
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
