import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { AuditRecord } from '../../src/audit/record-fields';
import { NdjsonAuditSink } from '../../src/audit/sink';
import { SyslogAuditSink, type SyslogSinkOptions } from '../../src/audit/syslog-sink';
import { syslogConnector } from '../../src/backplane/syslog-transport';
import { loadConfig, parseConfig } from '../../src/config/load-config';
import { openAudit } from '../../src/config/shared-services';
import { Gateway } from '../../src/gateway';
import { eventually } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';
import { freePort } from './support/redis-server';
import { type Rsyslog, startRsyslog } from './support/rsyslog';

/**
 * Audit records to a real rsyslogd: RFC 5424 as rsyslog parses it, octet-counted framing over
 * TCP and TLS, UDP datagrams, and the guarantees: a slow or absent collector never blocks,
 * overflow spills to the audit file (counted), and a collector restart loses no record.
 */

interface Harness {
  readonly sink: SyslogAuditSink;
  readonly spillFile: string;
  readonly logs: { msg: string; fields: object }[];
  spilled(): AuditRecord[];
  close(): Promise<void>;
}

function harness(rsyslog: { port: number }, overrides: Partial<SyslogSinkOptions> & { protocol?: 'tcp' | 'tls' | 'udp'; caFile?: string | null } = {}): Harness {
  const spillFile = path.join(tempDir('syslog-spill'), 'audit.ndjson');
  const spill = NdjsonAuditSink.open(spillFile, (err) => {
    throw err;
  });
  const logs: { msg: string; fields: object }[] = [];
  const sink = new SyslogAuditSink({
    connect: syslogConnector({ host: '127.0.0.1', port: rsyslog.port, protocol: overrides.protocol ?? 'tcp', caFile: overrides.caFile ?? null, connectTimeoutMs: 2_000 }),
    header: { facility: 16, hostname: 'gw-1', appName: 'tollgate', procId: '4242' },
    bufferBytes: 4 * 1024 * 1024,
    maxMessageBytes: 64 * 1024,
    spill,
    log: {
      warn: (fields, msg) => logs.push({ msg, fields }),
      info: (fields, msg) => logs.push({ msg, fields }),
    },
    ...overrides,
  });
  return {
    sink,
    spillFile,
    logs,
    spilled: () =>
      existsSync(spillFile)
        ? readFileSync(spillFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as AuditRecord)
        : [],
    close: async () => {
      await sink.close();
      await spill.close();
    },
  };
}

const record = (i: number, extra: Record<string, unknown> = {}): AuditRecord => ({ type: 'connection', flow_id: `f${i}`, decision: 'splice', note: 'ü', ...extra }) as unknown as AuditRecord;

/** flow_ids that rsyslog wrote, each as often as it arrived. */
function received(rsyslog: Rsyslog): string[] {
  return rsyslog.messages().map((m) => (JSON.parse(m.msg) as { flow_id: string }).flow_id);
}

describe('audit to syslog (rsyslogd over TCP)', () => {
  let rsyslog: Rsyslog;

  beforeAll(async () => {
    rsyslog = await startRsyslog();
  });

  afterAll(async () => {
    await rsyslog.stop();
  });

  test('each record is one RFC 5424 message whose MSG is the NDJSON record', async () => {
    const h = harness(rsyslog);
    const before = rsyslog.messages().length;
    const records = [record(1), { ...record(2), type: 'request', path: '/a b\n"quoted"' } as unknown as AuditRecord];
    for (const r of records) h.sink.write(r);
    await h.close();
    const got = await eventually(
      () => rsyslog.messages().slice(before),
      (m) => m.length >= 2,
    );
    expect(got.map((m) => ({ ...m, timestamp: 'T' }))).toEqual(
      records.map((r) => ({ pri: 16 * 8 + 6, version: '1', timestamp: 'T', hostname: 'gw-1', appName: 'tollgate', procId: '4242', msgId: r.type, msg: JSON.stringify(r) })),
    );
    expect(Number.isNaN(Date.parse(got[0]!.timestamp))).toBe(false);
    expect(h.sink.syslogStats).toMatchObject({ accepted: 2, sent: 2, resent: 0, dropped: 0, spilled: { overflow: 0, too_large: 0, send_failed: 0, shutdown: 0 } });
    expect(h.spilled()).toEqual([]);
  });

  test('a collector restart mid-run loses no record', async () => {
    const h = harness(rsyslog);
    const before = new Set(received(rsyslog));
    const total = 3000;
    let written = 0;
    const writeSome = async (count: number): Promise<void> => {
      for (let end = written + count; written < end; written++) {
        h.sink.write(record(100_000 + written));
        if (written % 25 === 0) await new Promise((r) => setImmediate(r));
      }
    };
    await writeSome(1000);
    await eventually(
      () => received(rsyslog).filter((id) => !before.has(id)).length,
      (n) => n > 500,
    );
    // Stopped while records are still being sent, then written to while it is down.
    const stopping = rsyslog.stop();
    await writeSome(1000);
    await stopping;
    await writeSome(500);
    expect(h.sink.syslogStats.connected).toBe(false);
    await rsyslog.start();
    await writeSome(total - written);
    await eventually(
      () => h.sink.syslogStats.connected,
      (c) => c,
      10_000,
    );
    await h.close();
    // rsyslog writes what it received asynchronously: give its queue time to reach the file.
    const missingNow = (): string[] => {
      const ids = new Set([...received(rsyslog), ...h.spilled().map((r) => (r as unknown as { flow_id: string }).flow_id)]);
      return Array.from({ length: total }, (_, i) => `f${100_000 + i}`).filter((id) => !ids.has(id));
    };
    expect(await eventually(missingNow, (missing) => missing.length === 0, 10_000)).toEqual([]);
    const stats = h.sink.syslogStats;
    expect(stats.dropped).toBe(0);
    expect(stats.accepted).toBe(total);
    // Nothing had to spill: the buffer held what waited, and the restart was replayed.
    expect(h.spilled()).toEqual([]);
    expect(h.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['syslog collector reachable again: sending the buffered audit records']));
  });

  test('records too large for the collector go to the audit file, counted and logged', async () => {
    const h = harness(rsyslog, { maxMessageBytes: 2048 });
    h.sink.write(record(7, { big: 'x'.repeat(4096) }));
    h.sink.write(record(8));
    await h.close();
    expect(h.spilled().map((r) => (r as unknown as { flow_id: string }).flow_id)).toEqual(['f7']);
    expect(h.sink.syslogStats.spilled.too_large).toBe(1);
    expect(h.logs).toEqual(
      expect.arrayContaining([expect.objectContaining({ msg: 'audit records written to audit.file instead of the syslog collector', fields: expect.objectContaining({ spilled: { too_large: 1 } }) })]),
    );
    expect(
      await eventually(
        () => received(rsyslog),
        (ids) => ids.includes('f8'),
      ),
    ).toContain('f8');
  });
});

describe('an absent collector', () => {
  test('never blocks: records wait in the bounded buffer, the overflow spills to the audit file, the rest arrive once it is up', async () => {
    const rsyslog = await startRsyslog();
    await rsyslog.stop();
    const h = harness(rsyslog, { bufferBytes: 64 * 1024 });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 600; i++) h.sink.write(record(200_000 + i, { pad: 'p'.repeat(200) }));
    const spilledNow = h.sink.syslogStats.spilled.overflow;
    // write() only queues: 600 records returned without the collector, and the overflow is known at once.
    expect(process.hrtime.bigint() > started).toBe(true);
    expect(spilledNow).toBeGreaterThan(0);
    expect(h.sink.syslogStats.queuedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(h.sink.syslogStats.queuedRecords + spilledNow).toBe(600);
    expect(h.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['audit records written to audit.file instead of the syslog collector']));
    try {
      await rsyslog.start();
      await eventually(
        () => h.sink.syslogStats.queuedRecords,
        (n) => n === 0,
        15_000,
      );
      await h.close();
      const spilled = new Set(h.spilled().map((r) => (r as unknown as { flow_id: string }).flow_id));
      expect(spilled.size).toBe(spilledNow);
      const missingNow = (): string[] => {
        const delivered = new Set(received(rsyslog));
        return Array.from({ length: 600 }, (_, i) => `f${200_000 + i}`).filter((id) => !delivered.has(id) && !spilled.has(id));
      };
      expect(await eventually(missingNow, (missing) => missing.length === 0, 10_000)).toEqual([]);
    } finally {
      await rsyslog.stop();
    }
  });

  test('records still waiting at shutdown go to the audit file', async () => {
    const rsyslog = await startRsyslog();
    await rsyslog.stop();
    const h = harness(rsyslog, { closeTimeoutMs: 200 });
    for (let i = 0; i < 10; i++) h.sink.write(record(300_000 + i));
    await h.close();
    expect(h.spilled()).toHaveLength(10);
    expect(h.sink.syslogStats.spilled.shutdown).toBe(10);
    h.sink.write(record(1));
    expect(h.sink.syslogStats.dropped).toBe(1);
  });
});

describe('audit to syslog over TLS and UDP', () => {
  test('TLS (rsyslogd with the gtls driver): the collector is verified, records arrive octet-counted', async () => {
    const dir = tempDir('syslog-tls');
    const ca = issue({ commonName: 'syslog test CA', isCa: true });
    const leaf = issue({ commonName: 'collector', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], issuer: ca });
    const caFile = writePem(dir, 'ca.pem', ca.certPem);
    const rsyslog = await startRsyslog({ tls: { caFile, certFile: writePem(dir, 'cert.pem', leaf.certPem), keyFile: writePem(dir, 'key.pem', leaf.keyPem) } });
    try {
      const h = harness(rsyslog, { protocol: 'tls', caFile });
      h.sink.write(record(400_001));
      await h.close();
      expect(
        await eventually(
          () => received(rsyslog),
          (ids) => ids.includes('f400001'),
        ),
      ).toEqual(['f400001']);

      // A collector whose certificate is not trusted gets nothing; the record is kept, not sent.
      const untrusted = harness(rsyslog, { protocol: 'tls', caFile: null, closeTimeoutMs: 300 });
      untrusted.sink.write(record(400_002));
      await eventually(
        () => untrusted.logs.length,
        (n) => n > 0,
      );
      await untrusted.close();
      expect(untrusted.logs[0]).toMatchObject({ msg: expect.stringMatching(/^syslog collector unreachable/), fields: { error: expect.stringMatching(/CERT|SELF_SIGNED|UNABLE|unable/) } });
      expect(untrusted.spilled().map((r) => (r as unknown as { flow_id: string }).flow_id)).toEqual(['f400002']);
      expect(received(rsyslog)).toEqual(['f400001']);
    } finally {
      await rsyslog.stop();
    }
  });

  test('UDP: one datagram per record, no framing', async () => {
    const rsyslog = await startRsyslog();
    try {
      const h = harness(rsyslog, { protocol: 'udp' });
      for (let i = 0; i < 5; i++) h.sink.write(record(500_000 + i));
      await h.close();
      const got = await eventually(
        () => received(rsyslog),
        (ids) => ids.length >= 5,
      );
      expect(got.sort()).toEqual(['f500000', 'f500001', 'f500002', 'f500003', 'f500004']);
      expect(rsyslog.messages()[0]).toMatchObject({ pri: 134, version: '1', appName: 'tollgate', msgId: 'connection' });
    } finally {
      await rsyslog.stop();
    }
  });
});

describe('a gateway with audit.syslog', () => {
  let rsyslog: Rsyslog;
  let origin: Origin;
  let gateway: Gateway;
  let dir = '';

  beforeAll(async () => {
    rsyslog = await startRsyslog();
    origin = await startHttpOrigin('syslog');
    dir = tempDir('gw-syslog');
    mkdirSync(path.join(dir, 'policies'));
    writeFileSync(path.join(dir, 'policies/p.yaml'), 'rules:\n  - match: origin.test\n    action: splice\n');
    const configFile = path.join(dir, 'tollgate.yaml');
    writeFileSync(
      configFile,
      [
        'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
        `allowed_ports:\n  http: [${origin.port}]`,
        'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
        `audit:\n  file: audit.ndjson\n  syslog:\n    address: 127.0.0.1:${rsyslog.port}\n    protocol: tcp\n    facility: local3\n    app_name: tollgate-test\n    hostname: replica-a`,
        'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
        'pinning:\n  state_file: null',
      ].join('\n'),
    );
    gateway = await Gateway.start(loadConfig(configFile), { logger: pino({ level: 'silent' }) });
  });

  afterAll(async () => {
    await gateway.stop(500);
    await rsyslog.stop();
    await origin.close();
  });

  const admin = async (urlPath: string): Promise<{ status: number; body: string }> => {
    const res = await curl([`http://127.0.0.1:${gateway.address('admin')!.port}${urlPath}`]);
    return { status: res.status, body: res.body };
  };
  const proxied = (urlPath: string) => curl(['-x', `http://127.0.0.1:${gateway.address('explicit')!.port}`, `http://origin.test:${origin.port}${urlPath}`]);

  test('every record reaches the collector and the file; metrics and readiness describe the collector', async () => {
    expect((await proxied('/hello?to=syslog')).status).toBe(200);
    const messages = await eventually(
      () => rsyslog.messages().filter((m) => m.msgId === 'request'),
      (m) => m.length > 0,
    );
    expect(messages[0]).toMatchObject({ pri: 19 * 8 + 6, hostname: 'replica-a', appName: 'tollgate-test', procId: String(process.pid) });
    expect(JSON.parse(messages[0]!.msg)).toMatchObject({ type: 'request', path: '/hello?to=syslog', status: 200 });
    await gateway.flushAudit();
    expect(readFileSync(path.join(dir, 'audit.ndjson'), 'utf8')).toContain('"path":"/hello?to=syslog"');

    const metrics = (await admin('/metrics')).body;
    expect(metrics).toMatch(/^tollgate_audit_syslog_connected 1$/m);
    expect(metrics).toMatch(/^tollgate_audit_syslog_records_total\{outcome="sent"\} [1-9]/m);
    expect(metrics).toMatch(/^tollgate_audit_syslog_spilled_total\{reason="overflow"\} 0$/m);
    expect(metrics).toMatch(/^tollgate_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+[^"]*"\} 1$/m);
    // Not configured here, so not exported (0 would read as "down").
    expect(metrics).not.toMatch(/tollgate_state_store_up/);
    expect(await admin('/readyz')).toEqual({ status: 200, body: 'ready\n' });
  });

  test('a collector that goes away is a warning in /readyz and a metric; records wait and arrive when it is back', async () => {
    await rsyslog.stop();
    await eventually(
      () => gateway.readiness().warnings.length,
      (n) => n > 0,
    );
    const readyz = await admin('/readyz');
    expect(readyz.status).toBe(200);
    expect(readyz.body).toMatch(/^ready\nwarning: syslog collector \(audit\.syslog\) unreachable since \S+: \d+ records waiting in the buffer, 0 spilled to audit\.file so far\n$/);
    expect((await admin('/metrics')).body).toMatch(/^tollgate_audit_syslog_connected 0$/m);
    expect((await proxied('/hello?while=down')).status).toBe(200);
    await rsyslog.start();
    const back = await eventually(
      () => rsyslog.messages().filter((m) => m.msg.includes('/hello?while=down')),
      (m) => m.length > 0,
      15_000,
    );
    expect(back).toHaveLength(1);
    expect((await admin('/readyz')).body).toBe('ready\n');
  });
});

describe('audit.file next to audit.syslog', () => {
  const flowIds = (file: string): string[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { flow_id: string }).flow_id)
      : [];
  const configFor = (dir: string, port: number, extra: string) => parseConfig(`audit:\n  file: audit.ndjson\n  syslog:\n    address: 127.0.0.1:${port}\n${extra}`, path.join(dir, 'tollgate.yaml'));

  test('also_file: true, collector absent: every record is in the file exactly once, spilled or not', async () => {
    const dir = tempDir('audit-both');
    const { audit, syslog } = openAudit(configFor(dir, await freePort(), '    buffer_size: 64KiB\n'), pino({ level: 'silent' }), () => undefined);
    for (let i = 0; i < 400; i++) audit.write(record(600_000 + i, { pad: 'p'.repeat(200) }));
    expect(syslog!.syslogStats.spilled.overflow).toBeGreaterThan(0);
    await audit.close();
    expect(syslog!.syslogStats.spilled.overflow + syslog!.syslogStats.spilled.shutdown).toBe(400);
    const inFile = flowIds(path.join(dir, 'audit.ndjson'));
    expect(inFile).toHaveLength(400);
    expect(new Set(inFile).size).toBe(400);
  });

  test('also_file: false, collector present: the file holds only what the collector could not take', async () => {
    const rsyslog = await startRsyslog();
    try {
      const dir = tempDir('audit-spill-only');
      const { audit } = openAudit(configFor(dir, rsyslog.port, '    also_file: false\n    max_message_size: 1KiB\n'), pino({ level: 'silent' }), () => undefined);
      for (let i = 0; i < 10; i++) audit.write(record(700_000 + i));
      audit.write(record(700_099, { pad: 'p'.repeat(2000) }));
      await audit.close();
      expect(flowIds(path.join(dir, 'audit.ndjson'))).toEqual(['f700099']);
      expect(
        (
          await eventually(
            () => received(rsyslog),
            (ids) => ids.length >= 10,
          )
        ).sort(),
      ).toEqual(Array.from({ length: 10 }, (_, i) => `f${700_000 + i}`));
    } finally {
      await rsyslog.stop();
    }
  });
});
