import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load-config';
import { Gateway } from '../../src/gateway';
import { eventually } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { curl } from './support/run';

const ROOT = path.resolve(__dirname, '../..');

/**
 * The operational metrics behind the shipped alerts: audit write failures (an audit file on
 * /dev/full, where every write fails with ENOSPC), HTTP-rule denials counted as denials, and the
 * alert rules in deploy/prometheus referring only to metrics the gateway exports.
 */
describe('metrics an operator alerts on', () => {
  let origin: Origin;
  let gateway: Gateway;
  let admin: string;
  let proxy: string;

  beforeAll(async () => {
    origin = await startHttpOrigin('alerts');
    const dir = tempDir('alerts');
    const yaml = [
      'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      'policies: p',
      `allowed_ports:\n  http: [${origin.port}]`,
      'upstream:\n  hosts:\n    origin.test: 127.0.0.1\n  allow_addresses: [127.0.0.0/8]',
      // Every write fails (ENOSPC): the gateway keeps serving, and says so.
      'audit:\n  file: /dev/full',
      'ca:\n  cert: ca/ca.pem\n  key: ca/ca.key',
      'pinning:\n  state_file: null',
    ].join('\n');
    const policies = path.join(dir, 'p');
    mkdirSync(policies);
    writeFileSync(
      path.join(policies, 'a.yaml'),
      'rules:\n  - name: web\n    match: origin.test\n    action: inspect\n    http:\n      - name: no-admin\n        request: { path: "/admin/**" }\n        action: deny\n',
    );
    gateway = await Gateway.start(parseConfig(yaml, path.join(dir, 'tollgate.yaml')), { logger: pino({ level: 'silent' }) });
    admin = `http://127.0.0.1:${gateway.address('admin')!.port}`;
    proxy = `http://127.0.0.1:${gateway.address('explicit')!.port}`;
  });

  afterAll(async () => {
    await gateway?.stop(1000);
    await origin?.close();
  });

  test('a failing audit sink is counted; an HTTP-rule denial is counted as a denial of that rule', async () => {
    expect((await curl(['-x', proxy, `http://origin.test:${origin.port}/admin/x`])).status).toBe(403);
    expect((await curl(['-x', proxy, `http://origin.test:${origin.port}/hello`])).status).toBe(200);
    const metrics = await eventually(
      async () => (await curl([`${admin}/metrics`])).body,
      (text) => /^tollgate_audit_write_failures_total [1-9]/m.test(text),
    );
    expect(metrics).toMatch(/^tollgate_audit_write_failures_total [1-9][0-9]*$/m);
    expect(metrics).toMatch(/^tollgate_http_rule_decisions_total\{rule="no-admin",action="deny"\} 1$/m);
    expect(metrics).toMatch(/^tollgate_rule_decisions_total\{rule="web",action="inspect"\} 2$/m);
  });

  test('every shipped alert refers only to metrics the gateway exports', async () => {
    const exported = new Set([...(await curl([`${admin}/metrics`])).body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const file = parseYaml(readFileSync(path.join(ROOT, 'deploy/prometheus/tollgate-alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const rules = file.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert).sort()).toEqual(['TollgateAuditWriteFailing', 'TollgateCaExpiresSoon', 'TollgateDenySpike', 'TollgateHttpDenySpike']);
    for (const rule of rules) {
      const names = [...rule.expr.matchAll(/\b(tollgate_[a-z_]+)/g)].map((m) => m[1]!);
      expect({ alert: rule.alert, unknown: names.filter((n) => !exported.has(n)) }).toEqual({ alert: rule.alert, unknown: [] });
      expect(names.length).toBeGreaterThan(0);
    }
  });
});
