import { spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AuditRecord } from '../../src/audit/record-fields';
import { documentedFields, recordFields } from './support/audit-doc';
import { runTail, type TailOptions } from '../../src/cli/tail';
import { buildCli } from './support/build';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { cleanEnv, curl } from './support/run';

/**
 * `tollgate tail` against the audit file of a running gateway that real clients (curl) use:
 * access-log lines, JSON, filters (in process: the same code the command runs), and the command
 * itself following the file across a rotation.
 */
let MAIN = '';

/** runTail's output lines, or the message it refused with. */
async function tail(options: Partial<TailOptions> & { configPath: string }): Promise<{ out: string[]; error: string | null }> {
  const out: string[] = [];
  try {
    await runTail({ file: undefined, follow: false, filter: '', format: 'line', lines: null, out: (l) => out.push(l), warn: () => undefined, ...options });
    return { out, error: null };
  } catch (err) {
    return { out, error: (err as Error).message };
  }
}

beforeAll(async () => {
  MAIN = await buildCli('tail');
}, 100_000);

const POLICY = `rules:
  - name: web
    match: origin.test
    action: inspect
    http:
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
        reason: not from here
  - name: plain
    match: other.test
    action: inspect
  - name: no-paste
    match: denied.test
    action: deny
`;

describe('tollgate tail', () => {
  let gw: TestGateway;
  let tls: Origin;
  let plain: Origin;
  let config: string;

  beforeAll(async () => {
    const dir = tempDir('tail');
    const root = issue({ commonName: 'tail root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    tls = await startHttpsOrigin('tail', { cert: leaf.certPem, key: leaf.keyPem });
    plain = await startHttpOrigin('tail-plain');
    gw = await startTestGateway({ policies: { 'p.yaml': POLICY }, allowedPorts: { tunnel: [tls.port], http: [plain.port] }, upstreamCaFile: writePem(dir, 'root.pem', root.certPem) });
    config = path.join(gw.dir, 'tollgate.yaml');
    expect((await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${tls.port}/hello`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${tls.port}/admin/users`])).status).toBe(403);
    expect((await curl(['-x', gw.proxy, `http://other.test:${plain.port}/hello?q=1`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, `https://denied.test:${tls.port}/`])).exitCode).not.toBe(0);
    await eventually(gw.audit, (r) => r.filter((x) => x.type === 'connection').length >= 3);
  });

  afterAll(async () => {
    await gw?.stop();
    await tls?.close();
    await plain?.close();
  });

  test('access-log lines: one per request and per tunnel, Squid fields first', async () => {
    const result = await tail({ configPath: config });
    expect(result.error).toBeNull();
    const lines = result.out;
    const find = (pattern: RegExp) => lines.filter((l) => pattern.test(l));
    expect(find(new RegExp(` TCP_MISS/200 \\d+ GET https://origin\\.test:${tls.port}/hello - HIER_DIRECT/origin\\.test text/plain inspect web \\S+-1$`))).toHaveLength(1);
    expect(find(new RegExp(` TCP_DENIED/403 \\d+ GET https://origin\\.test:${tls.port}/admin/users - HIER_NONE/- - deny no-admin `))).toHaveLength(1);
    expect(find(new RegExp(` TCP_MISS/200 \\d+ GET http://other\\.test:${plain.port}/hello\\?q=1 - HIER_DIRECT/other\\.test text/plain inspect plain `))).toHaveLength(1);
    expect(find(new RegExp(` TCP_DENIED/403 \\d+ CONNECT denied\\.test:${tls.port} - HIER_NONE/- - deny no-paste `))).toHaveLength(1);
    expect(find(new RegExp(` TCP_TUNNEL/200 \\d+ CONNECT origin\\.test:${tls.port} `))).toHaveLength(2);
    // The plain-HTTP client connection has no line of its own: its request has one.
    expect(find(/ - other\.test:/)).toEqual([]);
    for (const line of lines) expect(line.trim().split(/ +/)).toHaveLength(13);
  });

  test('--format json, --filter and --lines; every field of these real records is documented', async () => {
    const json = await tail({ configPath: config, format: 'json', file: gw.auditFile });
    const records = json.out.map((l) => JSON.parse(l) as AuditRecord);
    expect(records).toEqual(await gw.audit());
    const documented = documentedFields();
    for (const record of records) {
      expect(recordFields(record).filter((f) => !documented[record.type].has(f))).toEqual([]);
    }
    const denied = await tail({ configPath: config, filter: 'action=deny', format: 'json' });
    const deniedRecords = denied.out.map((l) => JSON.parse(l) as AuditRecord);
    expect(deniedRecords.map((r) => (r.type === 'request' ? r.http_rule : r.type === 'connection' ? r.rule : null)).sort()).toEqual(['no-admin', 'no-paste']);
    const last = await tail({ configPath: config, filter: 'type=request status<400', lines: 1 });
    expect(last.out).toEqual([expect.stringContaining(`http://other.test:${plain.port}/hello?q=1`)]);
    expect((await tail({ configPath: config, filter: 'colour=red' })).error).toMatch(/--filter: "colour=red": unknown field colour/);
  });

  test('the command: --follow prints new records as they are written, across a rotation, until SIGTERM (exit 0)', async () => {
    const child = spawn(process.execPath, [MAIN, 'tail', '--follow', '--lines', '1', '--filter', 'type=request', '--config', config], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      // The backlog (the last request so far) shows it has read to the end and is following.
      expect(
        await eventually(
          () => out,
          (o) => o.endsWith('\n'),
          10_000,
        ),
      ).toMatch(/^\S+ +\d+ \S+ \S+ .*\n$/);
      expect((await curl(['-x', gw.proxy, `http://other.test:${plain.port}/hello?follow=1`])).status).toBe(200);
      expect({
        out: await eventually(
          () => out,
          (o) => o.includes('?follow=1'),
          5000,
        ),
        err,
      }).toEqual({ out: expect.stringContaining('?follow=1'), err: '' });
      // Rotate as logrotate would: rename, then the gateway reopens the path.
      renameSync(gw.auditFile, `${gw.auditFile}.1`);
      gw.gateway.reopenAudit('test');
      expect((await curl(['-x', gw.proxy, `http://other.test:${plain.port}/hello?follow=2`])).status).toBe(200);
      expect(
        await eventually(
          () => out,
          (o) => o.includes('?follow=2'),
          5000,
        ),
      ).toContain('?follow=2');
      expect(readFileSync(gw.auditFile, 'utf8')).toContain('?follow=2');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(out.trim().split('\n')).toHaveLength(3);
  });

  test('audit.file: stdout cannot be tailed by path: a usage error saying what to do', async () => {
    const dir = tempDir('tail-stdout');
    writeFileSync(path.join(dir, 'tollgate.yaml'), 'audit:\n  file: stdout\n');
    expect((await tail({ configPath: path.join(dir, 'tollgate.yaml') })).error).toMatch(/audit\.file is stdout: pipe the audit lines in/);
  });
});
