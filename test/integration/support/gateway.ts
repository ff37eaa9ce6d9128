import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { parseConfig } from '../../../src/config/load-config';
import { Gateway } from '../../../src/gateway';
import type { AuditRecord, RequestRecord } from '../../../src/audit/record-fields';
import type { Authenticator } from '../../../src/identity/principal';
import { tempDir } from './pki';

export interface TestGateway {
  readonly gateway: Gateway;
  readonly dir: string;
  /** http://127.0.0.1:PORT of the explicit listener. */
  readonly proxy: string;
  readonly explicitPort: number;
  readonly auditFile: string;
  /** The gateway CA certificate clients must trust for inspected destinations. */
  readonly caFile: string;
  /** Operational log lines so far, parsed. */
  logs(): Record<string, unknown>[];
  /** Audit records so far (after flushing the sink). */
  audit(): Promise<AuditRecord[]>;
  /** The request records so far whose path (with query) is `path`. */
  requestRecords(path: string): Promise<RequestRecord[]>;
  stop(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Policy files by name. */
  readonly policies: Readonly<Record<string, string>>;
  /** Extra YAML appended to the generated configuration (top-level keys not set below). */
  readonly extraConfig?: string;
  readonly upstreamSection?: string;
  readonly listenSection?: string;
  readonly defaultAction?: string;
  readonly allowedPorts?: { tunnel: number[]; http: number[] };
  /** Names (besides origin.test, other.test, denied.test) that resolve to 127.0.0.1. */
  readonly hostNames?: readonly string[];
  /** upstream.ca_file: trust anchors for inspected origins. */
  readonly upstreamCaFile?: string;
  /** The user store handed to the gateway (proxy authentication, SOCKS5). */
  readonly authenticator?: Authenticator;
  /** Nameservers for the gateway's resolver (e.g. a closed port, for DNS failures). */
  readonly dnsServers?: readonly string[];
}

/**
 * Starts the gateway in this process on 127.0.0.1 port 0 with a generated configuration:
 * test names under `.test` resolve to 127.0.0.1 through upstream.hosts, and the destination
 * guard admits 127.0.0.0/8 through upstream.allow_addresses (never by switching it off).
 */
export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const dir = tempDir('gw');
  const policiesDir = path.join(dir, 'policies');
  mkdirSync(policiesDir);
  for (const [name, text] of Object.entries(options.policies)) writeFileSync(path.join(policiesDir, name), text);
  const ports = options.allowedPorts ?? { tunnel: [443], http: [80] };
  const yaml = [
    options.listenSection ?? 'listen:\n  explicit: 127.0.0.1:0',
    `policies: policies`,
    `default_action: ${options.defaultAction ?? 'deny'}`,
    `allowed_ports:\n  tunnel: [${ports.tunnel.join(', ')}]\n  http: [${ports.http.join(', ')}]`,
    options.upstreamSection ??
      [
        'upstream:',
        '  hosts:',
        ...['origin.test', 'other.test', 'denied.test', ...(options.hostNames ?? [])].map((n) => `    ${n}: 127.0.0.1`),
        '  allow_addresses: [127.0.0.0/8]',
        options.upstreamCaFile ? `  ca_file: ${options.upstreamCaFile}` : '',
      ].join('\n'),
    `audit:\n  file: audit.ndjson\n  redact_query_params: [token]`,
    `ca:\n  cert: ca/ca.pem\n  key: ca/ca.key`,
    options.extraConfig ?? '',
  ].join('\n');
  const configPath = path.join(dir, 'tollgate.yaml');
  writeFileSync(configPath, yaml);
  const config = parseConfig(yaml, configPath);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const gateway = await Gateway.start(config, {
    logger,
    ...(options.authenticator ? { authenticator: options.authenticator } : {}),
    ...(options.dnsServers ? { dnsServers: options.dnsServers } : {}),
  });
  const explicit = gateway.address('explicit');
  const explicitPort = explicit?.port ?? 0;
  const auditFile = config.audit.file;
  const audit = async (): Promise<AuditRecord[]> => {
    await gateway.flushAudit();
    if (!existsSync(auditFile)) return [];
    return readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AuditRecord);
  };
  return {
    gateway,
    dir,
    proxy: `http://127.0.0.1:${explicitPort}`,
    explicitPort,
    auditFile,
    caFile: config.ca.cert,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    audit,
    requestRecords: async (path) => (await audit()).filter((r): r is RequestRecord => r.type === 'request' && r.path === path),
    stop: () => gateway.stop(1000),
  };
}

export interface SocksTestGateway extends TestGateway {
  readonly socksPort: number;
  /** 127.0.0.1:PORT, as curl's --socks5-hostname takes it. */
  readonly socks: string;
}

/** A test gateway whose only listener is SOCKS (SOCKS4, 4a and 5 on one port). */
export async function startSocksTestGateway(options: Omit<TestGatewayOptions, 'listenSection'>): Promise<SocksTestGateway> {
  const gw = await startTestGateway({ ...options, listenSection: 'listen:\n  socks: 127.0.0.1:0' });
  const socksPort = gw.gateway.address('socks')!.port;
  return { ...gw, socksPort, socks: `127.0.0.1:${socksPort}` };
}

/** Polls until `predicate` holds, bounded by time. */
export async function eventually<T>(probe: () => Promise<T> | T, predicate: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (predicate(value)) return value;
    if (Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}
