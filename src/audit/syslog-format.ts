/**
 * Syslog message building, without I/O: RFC 5424 messages whose MSG is one NDJSON audit record,
 * and RFC 6587 octet-counting framing for stream transports (TCP, TLS).
 */

export interface SyslogHeader {
  /** RFC 5424 facility code, 0-23. */
  readonly facility: number;
  /** RFC 5424 HOSTNAME: printable ASCII, no spaces (validated by the configuration). */
  readonly hostname: string;
  /** RFC 5424 APP-NAME. */
  readonly appName: string;
  /** RFC 5424 PROCID. */
  readonly procId: string;
}

/** Informational (RFC 5424 section 6.2.1): an audit record is a fact, not an alarm. */
export const SEVERITY_INFORMATIONAL = 6;

/** RFC 5424 MSGID: the record type (`connection`, `request`, `pinning`), so a SIEM can route on it without parsing MSG. */
function msgId(type: unknown): string {
  return typeof type === 'string' && /^[\x21-\x7e]{1,32}$/.test(type) ? type : '-';
}

/**
 * `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`. MSG is the record's JSON, which
 * JSON.stringify keeps on one line (control characters are escaped); no BOM, so it is MSG-ANY
 * in RFC 5424's terms, which every collector accepts. No structured data: the record is the data.
 */
export function formatSyslogMessage(header: SyslogHeader, timestamp: Date, record: { readonly type?: unknown }, json: string): Buffer {
  const pri = header.facility * 8 + SEVERITY_INFORMATIONAL;
  return Buffer.from(`<${pri}>1 ${timestamp.toISOString()} ${header.hostname} ${header.appName} ${header.procId} ${msgId(record.type)} - ${json}`, 'utf8');
}

/** RFC 6587 section 3.4.1, octet counting: `MSG-LEN SP SYSLOG-MSG`, where MSG-LEN counts bytes. */
export function octetCountingFrame(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
}
