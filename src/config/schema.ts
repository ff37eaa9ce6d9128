import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_REDACTED_HEADERS } from '../audit/redact';
import { ACTIONS } from '../policy/types';
import { cidr, dnsServer, duration, filePath, listenAddress, port, section, size } from '../sources/fields';

/**
 * The schema of tollgate.yaml: the one source of the configuration's types, its validation and
 * the messages a person sees when a value is wrong. Keys are snake_case in YAML and camelCase in
 * the typed object the rest of the gateway reads. Relative paths are resolved against the
 * directory of the configuration file.
 */

const DAY_MS = 86_400_000;
/** Browsers are heading to a 47-day maximum; a minted certificate can be renewed for free. */
export const MAX_LEAF_VALIDITY_MS = 47 * DAY_MS;

const action = z.enum(ACTIONS as [string, ...string[]], { error: `expected one of: ${ACTIONS.join(', ')}` }) as z.ZodType<(typeof ACTIONS)[number]>;

const optionalListen = listenAddress.nullable().default(null);

/** Listener keys that may take PROXY protocol v2, and their names in the typed config. */
const PROXY_PROTOCOL_LISTENERS = ['explicit', 'socks', 'transparent_tls', 'transparent_http', 'reverse', 'reverse_http'] as const;
const LISTENER_KEYS = { explicit: 'explicit', socks: 'socks', transparent_tls: 'transparentTls', transparent_http: 'transparentHttp', reverse: 'reverse', reverse_http: 'reverseHttp' } as const;

/** A PAC `direct` entry: a host name, `.suffix` (the domain and its subdomains), or `*.suffix`. */
const pacPattern = z.string().regex(/^(?:\*\.|\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$|^[0-9.]+(?:\/[0-9]{1,2})?$/, {
  error: 'expected a name (intranet.example), a suffix (.corp.example or *.corp.example), or an IPv4 address or block',
});

/** Syslog facility names (RFC 5424 section 6.2.1), by code. */
export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'audit',
  'alert',
  'clock',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

/** `host:port` of a syslog collector: a name or an address (IPv6 in brackets). */
const collectorAddress = z.string().transform((text, ctx) => {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text.trim());
  const portNumber = Number(match?.[3]);
  if (!match || portNumber < 1 || portNumber > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${text}": expected host:port of the collector, such as siem.corp.example:6514 or [2001:db8::5]:514` });
    return z.NEVER;
  }
  return { host: (match[1] ?? match[2])!, port: portNumber };
});

/**
 * `redis://[user@]host:port[/db]` or `rediss://` (TLS). A password in the URL is refused: the
 * configuration file is usually no secret (a ConfigMap), so the password comes from a file.
 */
const redisUrl = z.string().superRefine((text, ctx) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${text}": expected redis://host:6379/0 or rediss://host:6380/0` });
    return;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') ctx.addIssue({ code: 'custom', message: 'expected a redis:// or rediss:// URL' });
  else if (url.hostname === '') ctx.addIssue({ code: 'custom', message: 'the URL names no host' });
  else if (url.password !== '') ctx.addIssue({ code: 'custom', message: 'no password in the URL (it would be in every copy of this file): put it in state.password_file' });
  else if (!/^\/?[0-9]{0,2}$/.test(url.pathname)) ctx.addIssue({ code: 'custom', message: 'the path is the database number, such as /0' });
});

export function configSchema(baseDir: string) {
  const resolvedPath = filePath.transform((file) => path.resolve(baseDir, file));

  const listen = section({
    explicit: optionalListen,
    socks: optionalListen,
    transparent_tls: optionalListen,
    transparent_http: optionalListen,
    reverse: optionalListen,
    reverse_http: optionalListen,
    admin: optionalListen,
    // Listeners that sit behind a load balancer sending PROXY protocol v2; only these accept
    // (and require) the header. The admin listener never does.
    proxy_protocol: z.array(z.enum(PROXY_PROTOCOL_LISTENERS, { error: `expected a list of: ${PROXY_PROTOCOL_LISTENERS.join(', ')}` })).default([]),
  }).transform((v) => ({
    explicit: v.explicit,
    socks: v.socks,
    transparentTls: v.transparent_tls,
    transparentHttp: v.transparent_http,
    reverse: v.reverse,
    reverseHttp: v.reverse_http,
    admin: v.admin,
    proxyProtocol: v.proxy_protocol.map((name) => LISTENER_KEYS[name]),
  }));

  const pac = section({
    direct: z.array(pacPattern).default([]),
    proxy_address: z
      .string()
      .regex(/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/, { error: 'expected host:port as clients should reach the proxy, such as proxy.corp.example:3128' })
      .nullable()
      .default(null),
  }).transform((v) => ({ direct: v.direct.map((p) => p.toLowerCase()), proxyAddress: v.proxy_address }));

  const transparent = section({
    tls_origin_port: port.default(443),
    http_origin_port: port.default(80),
    // A ClientHello without a server name gives the gateway nothing to decide by. Only `deny`
    // exists: dialling the address the client originally wanted needs SO_ORIGINAL_DST, which
    // Node cannot read.
    no_sni: z.enum(['deny'], { error: 'expected deny' }).default('deny'),
  }).transform((v) => ({ tlsOriginPort: v.tls_origin_port, httpOriginPort: v.http_origin_port, noSni: v.no_sni }));

  const ca = section({
    cert: resolvedPath.default(path.resolve(baseDir, 'certs/ca.pem')),
    key: resolvedPath.default(path.resolve(baseDir, 'certs/ca.key')),
    chain: resolvedPath.nullable().default(null),
    key_type: z.enum(['ecdsa-p256', 'rsa-3072']).default('ecdsa-p256'),
    leaf_key_type: z.enum(['ecdsa-p256', 'rsa-2048']).default('ecdsa-p256'),
    leaf_validity: duration({ min: 2 * 3_600_000, max: MAX_LEAF_VALIDITY_MS, maxText: '47d' }).default(30 * DAY_MS),
    leaf_cache_size: z.number().int().min(1).max(1_000_000).default(10_000),
  }).transform((v) => ({
    cert: v.cert,
    key: v.key,
    chain: v.chain,
    keyType: v.key_type,
    leafKeyType: v.leaf_key_type,
    leafValidityMs: v.leaf_validity,
    leafCacheSize: v.leaf_cache_size,
  }));

  const allowedPorts = section({
    tunnel: z.array(port).default([443]),
    http: z.array(port).default([80]),
    // SOCKS5 UDP ASSOCIATE: DNS only unless a rule lists its own ports.
    udp: z.array(port).default([53]),
  });

  // Parent proxies: `upstream.parents.NAME: { url, credentials_file | credentials_env }` and the
  // default way out `upstream.via` (direct, a parent, or a failover list of parents). The
  // credentials (`user:password`, Basic) are read at start, never written here or logged.
  const parentUrl = z.string({ error: 'expected http://host:port or https://host:port of the parent proxy' }).transform((text, ctx) => {
    let url: URL | null = null;
    try {
      url = new URL(text);
    } catch {
      url = null;
    }
    const problem =
      url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === ''
        ? `"${text}": expected http://host:port or https://host:port of the parent proxy`
        : url.username !== '' || url.password !== ''
          ? 'no credentials in the URL (they would be in every copy of this file): put user:password in credentials_file or name an environment variable in credentials_env'
          : url.port === ''
            ? `"${text}": name the port, such as http://${url.hostname}:3128`
            : url.pathname !== '/' || url.search !== '' || url.hash !== ''
              ? `"${text}": a parent proxy URL has no path, query or fragment`
              : null;
    if (problem !== null || url === null) {
      ctx.addIssue({ code: 'custom', message: problem ?? 'invalid URL' });
      return z.NEVER;
    }
    return { tls: url.protocol === 'https:', host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port), text: `${url.protocol}//${url.host}` };
  });
  const parent = section({
    url: parentUrl,
    credentials_file: resolvedPath.optional(),
    credentials_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected the name of an environment variable, such as CORP_PROXY_CREDENTIALS' })
      .optional(),
  })
    .refine((v) => v.credentials_file === undefined || v.credentials_env === undefined, { error: 'give credentials_file or credentials_env, not both', path: ['credentials_env'] })
    .transform((v) => ({ url: v.url, credentialsFile: v.credentials_file ?? null, credentialsEnv: v.credentials_env ?? null }));
  const parentName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'expected a short name: letters, digits, "_", "." or "-"' });
  const via = z
    .union([z.string(), z.array(z.string()).min(1, { error: 'list at least one parent, or write direct' })], { error: 'expected direct, a parent name, or a list of parent names' })
    .transform((v) => (typeof v === 'string' ? [v] : v));
  const viaProblem = (names: readonly string[], parents: Readonly<Record<string, unknown>>): string | null => {
    if (names.length === 1 && names[0] === 'direct') return null;
    if (names.includes('direct')) return 'direct cannot be part of a failover list (traffic that must leave through a parent would bypass it); use direct alone';
    const unknown = names.find((n) => !(n in parents));
    if (unknown !== undefined) return `unknown parent proxy "${unknown}"; define it under upstream.parents or use direct`;
    return new Set(names).size === names.length ? null : 'a parent is listed twice';
  };
  /** `upstream.via` checked against `upstream.parents`; [] = direct. */
  const checkedVia = (names: readonly string[], parents: Readonly<Record<string, unknown>>, ctx: z.RefinementCtx): readonly string[] => {
    const problem = viaProblem(names, parents);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: ['via'] });
    return names[0] === 'direct' ? [] : names;
  };

  const upstream = section({
    parents: z.record(parentName, parent).default({}),
    via: via.default(['direct']),
    ca_file: resolvedPath.nullable().default(null),
    hosts: z
      .record(
        z.string(),
        z.string().refine((a) => /^[0-9a-fA-F:.]+$/.test(a), { error: 'expected an IP address' }),
      )
      .default({}),
    allow_addresses: z.array(cidr).default([]),
    connect_timeout: duration({ min: 100 }).default(10_000),
    response_timeout: duration({ min: 100 }).default(60_000),
    idle_timeout: duration({ min: 100 }).default(300_000),
    max_sockets_per_host: z.number().int().min(1).default(256),
    dns_servers: z.array(dnsServer).default([]),
    dns_cache_size: z.number().int().min(1).max(10_000_000).default(10_000),
    dns_negative_ttl: duration({ min: 0, max: 3_600_000, maxText: '1h' }).default(5_000),
    dns_max_ttl: duration({ min: 1000 }).default(3_600_000),
  }).transform((v, ctx) => ({
    parents: v.parents,
    via: checkedVia(v.via, v.parents, ctx),
    caFile: v.ca_file,
    hosts: v.hosts,
    allowAddresses: v.allow_addresses,
    connectTimeoutMs: v.connect_timeout,
    responseTimeoutMs: v.response_timeout,
    idleTimeoutMs: v.idle_timeout,
    maxSocketsPerHost: v.max_sockets_per_host,
    dnsServers: v.dns_servers,
    dnsCacheSize: v.dns_cache_size,
    dnsNegativeTtlMs: v.dns_negative_ttl,
    dnsMaxTtlMs: v.dns_max_ttl,
  }));

  const http = section({
    via: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, { error: 'expected a pseudonym token such as tollgate' })
      .default('tollgate'),
    x_forwarded_for: z.boolean().default(false),
    max_header_size: size({ min: 1024, max: 1024 * 1024 }).default(64 * 1024),
    max_headers: z.number().int().min(8).max(10_000).default(100),
  }).transform((v) => ({ via: v.via, xForwardedFor: v.x_forwarded_for, maxHeaderBytes: v.max_header_size, maxHeaders: v.max_headers }));

  const cache = section({
    enabled: z.boolean().default(true),
    max_size: size({ min: 0 }).default(256 * 1024 * 1024),
    max_object_size: size({ min: 0 }).default(8 * 1024 * 1024),
    // Concurrent misses for one URL wait for the first one's response, this many at most, this long at most.
    collapse_max_waiters: z.number().int().min(0).max(10_000).default(100),
    collapse_max_wait: duration({ min: 100, max: 60_000, maxText: '1m' }).default(5_000),
  })
    .refine((v) => v.max_object_size <= v.max_size, { error: 'max_object_size must not exceed max_size', path: ['max_object_size'] })
    .transform((v) => ({
      enabled: v.enabled,
      maxSizeBytes: v.max_size,
      maxObjectBytes: v.max_object_size,
      collapseMaxWaiters: v.collapse_max_waiters,
      collapseMaxWaitMs: v.collapse_max_wait,
    }));

  const limits = section({
    header_timeout: duration({ min: 100 }).default(30_000),
    // A balancer sends its PROXY header in its first packet; a long wait only serves someone
    // holding connections open around it.
    proxy_header_timeout: duration({ min: 100, max: 60_000, maxText: '1m' }).default(5_000),
    peek_timeout: duration({ min: 100 }).default(10_000),
    socks_handshake_timeout: duration({ min: 100 }).default(10_000),
    tls_handshake_timeout: duration({ min: 100 }).default(10_000),
    client_idle_timeout: duration({ min: 100 }).default(300_000),
    shutdown_grace: duration({ min: 0 }).default(10_000),
    max_connections: z.number().int().min(1).default(10_000),
    max_connections_per_client: z.number().int().min(1).default(256),
    // SOCKS5 UDP ASSOCIATE and BIND (README "SOCKS").
    socks_udp_idle_timeout: duration({ min: 100 }).default(120_000),
    socks_udp_max_datagrams: z.number().int().min(1).default(100_000),
    socks_udp_max_bytes: size({ min: 1 }).default(64 * 1024 * 1024),
    socks_bind_timeout: duration({ min: 100, max: 600_000, maxText: '10m' }).default(60_000),
    // How long the client of an inspected tunnel may stay silent before the origin is dialled
    // to let it greet first (IMAP, SMTP, POP3, FTP); 0 = never. Only a wait shorter than
    // peek_timeout takes effect: a client still silent at peek_timeout is refused.
    server_first_wait: duration({ min: 0, max: 10_000, maxText: '10s' }).default(300),
  }).transform((v) => ({
    serverFirstWaitMs: v.server_first_wait,
    maxConnections: v.max_connections,
    maxConnectionsPerClient: v.max_connections_per_client,
    headerTimeoutMs: v.header_timeout,
    proxyHeaderTimeoutMs: v.proxy_header_timeout,
    peekTimeoutMs: v.peek_timeout,
    socksHandshakeTimeoutMs: v.socks_handshake_timeout,
    tlsHandshakeTimeoutMs: v.tls_handshake_timeout,
    clientIdleTimeoutMs: v.client_idle_timeout,
    shutdownGraceMs: v.shutdown_grace,
    socksUdpIdleTimeoutMs: v.socks_udp_idle_timeout,
    socksUdpMaxDatagrams: v.socks_udp_max_datagrams,
    socksUdpMaxBytes: v.socks_udp_max_bytes,
    socksBindTimeoutMs: v.socks_bind_timeout,
  }));

  const syslog = section({
    address: collectorAddress,
    protocol: z.enum(['tcp', 'tls', 'udp'], { error: 'expected tcp, tls or udp' }).default('tcp'),
    facility: z.union([z.enum(SYSLOG_FACILITIES), z.number().int().min(0).max(23)], { error: `expected a facility name (${SYSLOG_FACILITIES.join(', ')}) or a number 0-23` }).default('local0'),
    app_name: z
      .string()
      .regex(/^[\x21-\x7e]{1,48}$/, { error: 'expected 1-48 printable ASCII characters without spaces (RFC 5424 APP-NAME)' })
      .default('tollgate'),
    // RFC 5424 HOSTNAME; the default is the machine's (in Kubernetes: the pod's) name.
    hostname: z
      .string()
      .regex(/^[\x21-\x7e]{1,255}$/, { error: 'expected 1-255 printable ASCII characters without spaces (RFC 5424 HOSTNAME)' })
      .nullable()
      .default(null),
    // true: every record goes to audit.file too. false: audit.file gets only what the collector
    // could not take (the spill), so nothing is ever dropped silently.
    also_file: z.boolean().default(true),
    buffer_size: size({ min: 64 * 1024, max: 1024 * 1024 * 1024 }).default(16 * 1024 * 1024),
    // Larger records go to audit.file instead (counted); keep it at or below the collector's
    // limit (rsyslog: global(maxMessageSize), 8k by default).
    max_message_size: size({ min: 1024, max: 16 * 1024 * 1024 }).default(64 * 1024),
    // tls: extra trust anchors for the collector's certificate, added to the system's.
    ca_file: resolvedPath.nullable().default(null),
  })
    .refine((v) => v.protocol === 'tls' || v.ca_file === null, { error: 'ca_file is for protocol: tls', path: ['ca_file'] })
    .refine((v) => v.protocol !== 'udp' || v.max_message_size <= 65_000, { error: 'a UDP datagram holds at most 65000 bytes of message here', path: ['max_message_size'] })
    .transform((v) => ({
      host: v.address.host,
      port: v.address.port,
      protocol: v.protocol,
      facility: typeof v.facility === 'number' ? v.facility : SYSLOG_FACILITIES.indexOf(v.facility),
      appName: v.app_name,
      hostname: v.hostname,
      alsoFile: v.also_file,
      bufferBytes: v.buffer_size,
      maxMessageBytes: v.max_message_size,
      caFile: v.ca_file,
    }));

  const audit = section({
    file: z.string().min(1).default('logs/audit.ndjson'),
    syslog: syslog.nullable().default(null),
    redact_query_params: z.array(z.string().min(1)).default([]),
    redact_headers: z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'expected a header name such as X-Api-Key' })).default([...DEFAULT_REDACTED_HEADERS]),
  }).transform((v) => ({
    /** An absolute path, or 'stdout'. */
    file: v.file === 'stdout' ? 'stdout' : path.resolve(baseDir, v.file),
    /** Also applied to `;`-parameters and to URL-valued headers (Referer, Location). */
    redactQueryParams: v.redact_query_params.map((p) => p.toLowerCase()),
    /** Besides Authorization, Proxy-Authorization, Cookie and Set-Cookie, which always are. */
    redactHeaders: v.redact_headers.map((h) => h.toLowerCase()),
    /** Null: no syslog; audit goes to `file` only. */
    syslog: v.syslog,
  }));

  // State shared by the replicas of a fleet; without a store it stays in each process.
  const state = section({
    redis: redisUrl.nullable().default(null),
    password_file: resolvedPath.nullable().default(null),
    // rediss://: extra trust anchors for the server's certificate, added to the system's.
    ca_file: resolvedPath.nullable().default(null),
    // Keys are prefixed so that one Redis can serve several fleets.
    key_prefix: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{1,64}$/, { error: 'expected 1-64 letters, digits and : _ . -' })
      .default('tollgate:'),
    // Every command has this deadline: past it the store counts as unreachable for that call.
    timeout: duration({ min: 10, max: 10_000, maxText: '10s' }).default(500),
  })
    .refine((v) => v.redis !== null || (v.password_file === null && v.ca_file === null), { error: 'password_file and ca_file need state.redis', path: ['redis'] })
    .transform((v) => ({ redis: v.redis, passwordFile: v.password_file, caFile: v.ca_file, keyPrefix: v.key_prefix, timeoutMs: v.timeout }));

  const pinning = section({
    mode: z.enum(['report', 'auto_splice'], { error: 'expected report or auto_splice' }).default('report'),
    min_clients: z.number().int().min(2, { error: 'at least 2: one client alone must never switch a name' }).default(3),
    window: duration({ min: 1000 }).default(600_000),
    splice_for: duration({ min: 1000 }).default(3_600_000),
    state_file: z.string().min(1).nullable().default('state/pinning.json'),
  }).transform((v) => ({
    mode: v.mode,
    minClients: v.min_clients,
    windowMs: v.window,
    spliceForMs: v.splice_for,
    stateFile: v.state_file === null ? null : path.resolve(baseDir, v.state_file),
  }));

  const auth = section({
    users_file: resolvedPath.nullable().default(null),
    realm: z
      .string()
      .regex(/^[\x20-\x7e]{1,64}$/, { error: 'expected 1-64 printable ASCII characters' })
      .refine((r) => !/["\\]/.test(r), { error: 'the realm may not contain " or \\' })
      .default('tollgate'),
    max_failures: z.number().int().min(1).max(10_000).default(10),
    failure_window: duration({ min: 1000 }).default(300_000),
    cache_ttl: duration({ min: 0, max: 3_600_000, maxText: '1h' }).default(60_000),
  }).transform((v) => ({
    /** Null: no authentication (every client is anonymous). */
    usersFile: v.users_file,
    realm: v.realm,
    maxFailures: v.max_failures,
    failureWindowMs: v.failure_window,
    cacheTtlMs: v.cache_ttl,
  }));

  const flowView = section({
    enabled: z.boolean().default(true),
    // Who may watch traffic on /flows: client addresses of the admin listener. Loopback unless
    // you widen it; the other admin pages are not affected.
    allow: z.array(cidr).default(['127.0.0.0/8', '::1']),
    records: z.number({ error: 'expected a number of records such as 1000' }).int().min(10).max(100_000).default(1000),
  }).transform((v) => ({ enabled: v.enabled, allow: v.allow, records: v.records }));

  // The reverse-proxy (ingress) listeners: which backend a Host (and path prefix) is served by,
  // and the certificates listen.reverse presents. Reloaded with the policy, unlike listen.
  const backendUrl = z.string().superRefine((text, ctx) => {
    let url: URL | null = null;
    try {
      url = new URL(text);
    } catch {
      // Reported below.
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '')
      ctx.addIssue({ code: 'custom', message: `"${text}": expected an http:// or https:// URL of the backend, such as https://app.internal:8443` });
    else if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'no credentials in the backend URL' });
    else if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
      ctx.addIssue({ code: 'custom', message: 'the backend URL names only scheme, host and port (requests keep their own path)' });
  });
  const reverseRoute = section({
    host: z.string().regex(/^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?$/, { error: 'expected a host name such as app.example or *.apps.example' }),
    path_prefix: z
      .string()
      .regex(/^\/[^\s?#]*$/, { error: 'expected a path starting with /, such as /api/' })
      .default('/'),
    backend: backendUrl,
    ca_file: resolvedPath.nullable().default(null),
  }).transform((v) => ({ host: v.host.toLowerCase().replace(/\.$/, ''), pathPrefix: v.path_prefix, backend: v.backend, caFile: v.ca_file }));
  const reverse = section({
    certificates: z.array(section({ cert: resolvedPath, key: resolvedPath })).default([]),
    routes: z.array(reverseRoute).default([]),
    default_route: section({ backend: backendUrl, ca_file: resolvedPath.nullable().default(null) })
      .transform((v) => ({ backend: v.backend, caFile: v.ca_file }))
      .nullable()
      .default(null),
  }).transform((v) => ({ certificates: v.certificates, routes: v.routes, defaultRoute: v.default_route }));

  const log = section({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  });

  // 'auto' = one gateway process per CPU core (resolved at start, see cli/workers.ts).
  const workers = z.union([z.literal('auto'), z.number().int().min(1).max(256)], { error: 'expected auto or a number of processes (1-256)' });

  return section({
    workers: workers.default(1),
    listen: listen.prefault({}),
    transparent: transparent.prefault({}),
    ca: ca.prefault({}),
    policies: resolvedPath.default(path.resolve(baseDir, 'policies')),
    default_action: action.default('deny'),
    allowed_ports: allowedPorts.prefault({}),
    upstream: upstream.prefault({}),
    http: http.prefault({}),
    cache: cache.prefault({}),
    limits: limits.prefault({}),
    audit: audit.prefault({}),
    pinning: pinning.prefault({}),
    auth: auth.prefault({}),
    log: log.prefault({}),
    pac: pac.prefault({}),
    flow_view: flowView.prefault({}),
    state: state.prefault({}),
    reverse: reverse.prefault({}),
  }).transform((v) => ({
    workers: v.workers,
    listen: v.listen,
    transparent: v.transparent,
    ca: v.ca,
    policiesDir: v.policies,
    defaultAction: v.default_action,
    allowedPorts: { tunnel: v.allowed_ports.tunnel, http: v.allowed_ports.http, udp: v.allowed_ports.udp },
    upstream: v.upstream,
    http: v.http,
    cache: v.cache,
    limits: v.limits,
    audit: v.audit,
    pinning: v.pinning,
    auth: v.auth,
    log: v.log,
    pac: v.pac,
    flowView: v.flow_view,
    state: v.state,
    reverse: v.reverse,
  }));
}

export type GatewayConfig = z.output<ReturnType<typeof configSchema>> & {
  /** Absolute path of the file this configuration came from. */
  readonly sourcePath: string;
};
