import { hostname } from 'node:os';
import { FanOutAuditSink } from '../audit/fan-out-sink';
import { type AuditSink, NdjsonAuditSink } from '../audit/sink';
import { SyslogAuditSink } from '../audit/syslog-sink';
import { RedisStateStore } from '../backplane/redis-state';
import { syslogConnector } from '../backplane/syslog-transport';
import type { Logger } from '../logging/logger';
import { bracketedAddress } from '../protocol/address-text';
import type { PinningLedger } from '../terminals/pinning-monitor';
import type { GatewayConfig } from './schema';

/**
 * What a replica shares with the rest of its fleet, built from the configuration: the state
 * store (state.redis) and the audit pipeline (audit.file, audit.syslog). The gateway composes
 * them; the connections themselves live in backplane/.
 */

/** How long start-up waits for the state store before going on without it (and saying so). */
const STATE_STORE_START_WAIT_MS = 3_000;

/** Bounds of the fleet's pinning ledger, as those of one process (terminals/pinning-monitor.ts). */
const PINNING_LEDGER_LIMITS = { maxClientsPerName: 64, maxSplicedNames: 10_000 };

/** Connects the state store when state.redis is set; null keeps state in this process. */
export async function connectStateStore(config: GatewayConfig, logger: Logger): Promise<RedisStateStore | null> {
  const { state } = config;
  if (!state.redis) return null;
  const store = RedisStateStore.connect({ url: state.redis, passwordFile: state.passwordFile, caFile: state.caFile, keyPrefix: state.keyPrefix, timeoutMs: state.timeoutMs }, logger);
  await store.waitReady(STATE_STORE_START_WAIT_MS);
  return store;
}

export function pinningLedger(config: GatewayConfig, store: RedisStateStore | null): PinningLedger | null {
  return store?.pinningLedger({ windowMs: config.pinning.windowMs, spliceForMs: config.pinning.spliceForMs, ...PINNING_LEDGER_LIMITS }) ?? null;
}

/**
 * The audit sinks: the file (or stdout), and with audit.syslog a syslog sink that spills into
 * the file. The syslog sink closes first, so the records it could not deliver still land.
 */
/**
 * The audit sinks the configuration asks for: the file (or stdout), and with `audit.syslog` the
 * collector too. `onWriteFailure` hears of every failed file write and the records it lost.
 */
export function openAudit(config: GatewayConfig, logger: Logger, onWriteFailure: (err: Error, lostRecords: number) => void): { audit: AuditSink; syslog: SyslogAuditSink | null } {
  const file = NdjsonAuditSink.open(config.audit.file, onWriteFailure);
  const settings = config.audit.syslog;
  if (!settings) return { audit: file, syslog: null };
  const log = logger.child({ component: 'audit-syslog', collector: `${settings.protocol}://${bracketedAddress(settings.host)}:${settings.port}` });
  const syslog = new SyslogAuditSink({
    connect: syslogConnector({ host: settings.host, port: settings.port, protocol: settings.protocol, caFile: settings.caFile }),
    header: { facility: settings.facility, hostname: settings.hostname ?? hostname(), appName: settings.appName, procId: String(process.pid) },
    bufferBytes: settings.bufferBytes,
    maxMessageBytes: settings.maxMessageBytes,
    // With also_file every record is in the file already: a spill is counted, not written twice.
    spill: settings.alsoFile ? { write: () => undefined } : file,
    log: { warn: (fields, msg) => log.warn(fields, msg), info: (fields, msg) => log.info(fields, msg) },
  });
  return { audit: new FanOutAuditSink(settings.alsoFile ? [file, syslog] : [syslog], [syslog, file]), syslog };
}
