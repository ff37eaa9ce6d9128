import { rmSync } from 'node:fs';
import path from 'node:path';
import type { AuditRecord } from '../src/audit/record-fields';
import { startTestGateway, type TestGateway } from '../test/integration/support/gateway';
import { startHttpsOrigin, type Origin } from '../test/integration/support/origins';
import { issue, tempDir, writePem } from '../test/integration/support/pki';
import { curl } from '../test/integration/support/run';

/**
 * `npm run demo`: a newcomer's first five minutes, offline. Starts two local HTTPS origins (one
 * with a certificate from a demo CA, one self-signed), a gateway with a demo policy, then sends
 * four requests with curl and prints what happened and the audit lines each one left.
 */

export interface DemoStep {
  readonly title: string;
  readonly expect: string;
  readonly ok: boolean;
}

/**
 * The directories the demo creates (the origins' certificates, the gateway's configuration, CA
 * key and audit file), removed when it ends, also on Ctrl-C (demo/main.ts): a demo must not
 * leave a CA private key lying in /tmp.
 */
export class DemoWorkspace {
  readonly dirs: string[] = [];

  add(dir: string): string {
    this.dirs.push(dir);
    return dir;
  }

  removeAll(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

const POLICY = `# The demo policy: one rule per outcome.
rules:
  - name: demo-inspect
    match: good.demo.test
    action: inspect
    reason: decrypted, re-verified and audited per request
  - name: demo-splice
    match: spliced.demo.test
    action: splice
    reason: relayed untouched; the client sees the origin's own certificate
  - name: demo-deny
    match: denied.demo.test
    action: deny
    reason: the demo policy blocks this destination
  - name: demo-inspect-bad-origin
    match: bad.demo.test
    action: inspect
    reason: inspected, so the gateway checks the origin certificate itself
`;

function summarise(record: AuditRecord): string {
  const pick = (keys: readonly string[]): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const value = (record as unknown as Record<string, unknown>)[key];
      if (value !== null && value !== undefined && value !== '') out[key] = value;
    }
    return out;
  };
  if (record.type === 'request') return JSON.stringify(pick(['type', 'host', 'method', 'path', 'status', 'action', 'rule', 'upstream_cert_sha256', 'error']));
  return JSON.stringify(pick(['type', 'target', 'sni', 'action', 'rule', 'reason', 'bytes_to_client', 'close', 'error']));
}

export async function runDemo(write: (line: string) => void, workspace = new DemoWorkspace()): Promise<DemoStep[]> {
  const dir = workspace.add(tempDir('demo'));
  const demoRoot = issue({ commonName: 'tollgate demo origin CA', isCa: true });
  const goodLeaf = issue({ commonName: 'good.demo.test', dnsNames: ['good.demo.test', 'spliced.demo.test'], issuer: demoRoot });
  const badLeaf = issue({ commonName: 'bad.demo.test', dnsNames: ['bad.demo.test'] });
  const rootFile = writePem(dir, 'demo-origin-ca.pem', demoRoot.certPem);
  let good: Origin | null = null;
  let bad: Origin | null = null;
  let gw: TestGateway | null = null;
  const steps: DemoStep[] = [];
  try {
    good = await startHttpsOrigin('the demo origin', { cert: goodLeaf.certPem, key: goodLeaf.keyPem });
    bad = await startHttpsOrigin('the self-signed origin', { cert: badLeaf.certPem, key: badLeaf.keyPem });
    gw = await startTestGateway({
      policies: { 'demo.yaml': POLICY },
      hostNames: ['good.demo.test', 'spliced.demo.test', 'denied.demo.test', 'bad.demo.test'],
      allowedPorts: { tunnel: [good.port, bad.port], http: [80] },
      upstreamCaFile: rootFile,
    });
    workspace.add(gw.dir);
    const gateway = gw;
    write(`tollgate demo (no internet needed)`);
    write(`  origins:  https://good.demo.test:${good.port} (certificate from a demo CA), https://bad.demo.test:${bad.port} (self-signed)`);
    write(`  gateway:  ${gateway.proxy}   config ${path.join(gateway.dir, 'tollgate.yaml')}`);
    write(`  audit:    ${gateway.auditFile}`);
    write('  (these files, the gateway CA key among them, are removed when the demo ends)');
    write('');
    let seen = 0;
    const step = async (title: string, expectation: string, args: string[], check: (r: Awaited<ReturnType<typeof curl>>) => boolean): Promise<void> => {
      write(`== ${title}`);
      write(`   $ curl ${args.map((a) => (a.startsWith('/') ? path.basename(a) : a)).join(' ')}`);
      const result = await curl(args, 10_000);
      const ok = check(result);
      const body = (/<title>([^<]*)<\/title>/.exec(result.body)?.[1] ?? result.body.trim().split('\n')[0] ?? '').slice(0, 100);
      write(`   -> ${result.status === 0 ? `curl exit ${result.exitCode}: ${result.stderr.trim().split('\n').pop() ?? ''}` : `HTTP ${result.status}`}${body ? `  "${body}"` : ''}`);
      write(`   ${ok ? 'as expected' : 'UNEXPECTED'}: ${expectation}`);
      // Connection records are written when the client's connection closes.
      await new Promise((r) => setTimeout(r, 150));
      const records = await gateway.audit();
      for (const record of records.slice(seen)) write(`   audit ${summarise(record)}`);
      seen = records.length;
      write('');
      steps.push({ title, expect: expectation, ok });
    };
    await step(
      '1. inspected',
      'the gateway decrypts with a certificate it minted, verifies the origin, audits the request',
      ['-x', gateway.proxy, '--cacert', gateway.caFile, `https://good.demo.test:${good.port}/hello`],
      (r) => r.status === 200,
    );
    await step(
      '2. spliced',
      "relayed untouched: curl trusts the origin's own CA, not the gateway's",
      ['-x', gateway.proxy, '--cacert', rootFile, `https://spliced.demo.test:${good.port}/hello`],
      (r) => r.status === 200,
    );
    await step('3. denied', '403 on CONNECT, naming the rule', ['-x', gateway.proxy, `https://denied.demo.test:${good.port}/`], (r) => r.exitCode !== 0 && /403/.test(r.stderr));
    await step(
      '4. bad origin certificate',
      "502 from the gateway: the origin's certificate is self-signed",
      ['-x', gateway.proxy, '--cacert', gateway.caFile, `https://bad.demo.test:${bad.port}/`],
      (r) => r.status === 502,
    );
    const failed = steps.filter((s) => !s.ok).length;
    write(failed === 0 ? 'all four outcomes as expected.' : `${failed} step(s) did not go as expected.`);
    write('Next: npm start (the gateway on tollgate.yaml), then open the admin page printed at start.');
    return steps;
  } finally {
    await gw?.stop();
    await good?.close();
    await bad?.close();
    workspace.removeAll();
  }
}
