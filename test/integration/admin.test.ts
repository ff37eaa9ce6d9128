import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { loadPac } from './support/pac-runtime';
import { curl, run } from './support/run';

/** The value of one Prometheus sample line, or null when absent. */
function sample(metrics: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+|NaN)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      (match[2] ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => {
          const [k, v] = kv.split('=');
          return [k, (v ?? '').replace(/^"|"$/g, '')];
        }),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return null;
}

describe('admin listener: health, readiness, metrics, status page, CA download', () => {
  let gw: TestGateway;
  let plain: Origin;
  let tls: Origin;
  let admin: string;

  beforeAll(async () => {
    const dir = tempDir('admin');
    const root = issue({ commonName: 'origin root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'other.test'], issuer: root });
    plain = await startHttpOrigin('plain');
    tls = await startHttpsOrigin('tls', { cert: leaf.certPem, key: leaf.keyPem });
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      allowedPorts: { tunnel: [tls.port], http: [plain.port] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      extraConfig: 'pac:\n  direct: [".corp.test", "printer.test"]',
      policies: {
        'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n  - match: other.test\n    action: splice\n  - match: denied.test\n    action: deny\n',
      },
    });
    admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await tls.close();
  });

  test('/healthz and /readyz answer 200 when every listener is bound, the CA loaded and a policy in force', async () => {
    expect((await curl([`${admin}/healthz`])).status).toBe(200);
    const ready = await curl([`${admin}/readyz`]);
    expect(ready.status).toBe(200);
    expect(ready.body).toBe('ready\n');
  });

  test('/metrics counts flows by front-end and decision, bytes, requests, minted certificates', async () => {
    expect((await curl(['-x', gw.proxy, `http://origin.test:${plain.port}/hello`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://origin.test:${tls.port}/hello`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, '-k', `https://other.test:${tls.port}/hello`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, `https://denied.test:${tls.port}/`])).exitCode).not.toBe(0);

    const metrics = await eventually(
      async () => (await curl([`${admin}/metrics`])).body,
      (text) => (sample(text, 'tollgate_flows_closed_total', { frontend: 'explicit-connect', action: 'splice' }) ?? 0) >= 1,
    );
    expect(sample(metrics, 'tollgate_flow_decisions_total', { frontend: 'explicit-connect', action: 'inspect' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_flow_decisions_total', { frontend: 'explicit-connect', action: 'splice' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_flow_decisions_total', { frontend: 'explicit-connect', action: 'deny' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_flow_decisions_total', { frontend: 'explicit-http', action: 'inspect' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_flow_bytes_total', { frontend: 'explicit-connect', direction: 'to_client' })).toBeGreaterThan(100);
    expect(sample(metrics, 'tollgate_request_duration_seconds_count', { scheme: 'https', status_class: '2xx' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_request_duration_seconds_count', { scheme: 'http', status_class: '2xx' })).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_certificates_minted_total')).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_leaf_cache_entries')).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'tollgate_policy_info', { version: gw.gateway.policy.version })).toBe(1);
    expect(sample(metrics, 'tollgate_policy_last_reload_ok')).toBe(1);
    expect(sample(metrics, 'tollgate_active_tunnels')).toBe(0);
    expect(metrics).toContain('# TYPE tollgate_limit_breaches_total counter');
    expect(metrics).toContain('# TYPE tollgate_auth_failures_total counter');
    expect(metrics).toContain('# TYPE tollgate_http_cache_total counter');
    // Per-rule counters: rule ids (here file:line, the rules have no names) as labels.
    expect(metrics).toMatch(/^tollgate_rule_decisions_total\{rule="[^"]*p\.yaml:6",action="deny"\} [1-9]/m);
    expect(metrics).toMatch(/^tollgate_rule_decisions_total\{rule="[^"]*p\.yaml:4",action="splice"\} [1-9]/m);
    const ca = new X509Certificate(readFileSync(gw.caFile));
    expect(sample(metrics, 'tollgate_ca_not_after_timestamp_seconds')).toBe(Date.parse(ca.validTo) / 1000);
    expect(metrics).toMatch(/^tollgate_build_info\{version="[0-9.]+",node="v[0-9.]+"\} 1$/m);
    expect(sample(metrics, 'tollgate_audit_write_failures_total')).toBe(0);
    // Destination names never become label values (unbounded cardinality, and they are audit data).
    expect(metrics).not.toContain('origin.test');
  });

  test('an open tunnel is counted as active until it closes', async () => {
    // Flows of earlier tests close asynchronously after their clients exit.
    await eventually(
      async () => (await curl([`${admin}/metrics`])).body,
      (t) => sample(t, 'tollgate_active_tunnels') === 0,
    );
    const socket = net.connect(gw.explicitPort, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`CONNECT other.test:${tls.port} HTTP/1.1\r\nHost: other.test:${tls.port}\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const during = await curl([`${admin}/metrics`]);
    expect(sample(during.body, 'tollgate_active_tunnels')).toBe(1);
    socket.destroy();
    const after = await eventually(
      async () => (await curl([`${admin}/metrics`])).body,
      (t) => sample(t, 'tollgate_active_tunnels') === 0,
    );
    expect(sample(after, 'tollgate_active_tunnels')).toBe(0);
  });

  test('a failed policy reload shows in metrics and on the status page, and the gateway stays ready', async () => {
    const policyFile = path.join(gw.dir, 'policies', 'broken.yaml');
    writeFileSync(policyFile, 'rules:\n  - match: x.test\n    action: explode\n');
    try {
      expect(gw.gateway.reload('test').ok).toBe(false);
      const metrics = (await curl([`${admin}/metrics`])).body;
      expect(sample(metrics, 'tollgate_policy_reloads_total', { result: 'failed' })).toBeGreaterThanOrEqual(1);
      expect(sample(metrics, 'tollgate_policy_last_reload_ok')).toBe(0);
      const page = await curl([`${admin}/`]);
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.body).toContain('failed');
      expect(page.body).toContain(gw.gateway.policy.version);
      expect(page.body).not.toMatch(/<script|https?:\/\/(?!127)/);
      const ready = await curl([`${admin}/readyz`]);
      expect(ready.status).toBe(200);
      expect(ready.body).toMatch(/^ready\nwarning: the last policy reload \(.*\) failed/);
    } finally {
      writeFileSync(policyFile, 'rules: []\n');
      expect(gw.gateway.reload('test').ok).toBe(true);
    }
  });

  test('/ca.pem and /ca.der serve the gateway CA with the right content types', async () => {
    const pem = await curl([`${admin}/ca.pem`]);
    expect(pem.status).toBe(200);
    expect(pem.headers['content-type']).toBe('application/x-pem-file');
    expect(pem.body).toBe(readFileSync(gw.caFile, 'utf8'));
    const der = await run('curl', ['-sS', '-D', '/dev/null', `${admin}/ca.der`]);
    const cert = new X509Certificate(der.stdout);
    expect(cert.fingerprint256).toBe(new X509Certificate(readFileSync(gw.caFile)).fingerprint256);
    const headers = await curl(['-I', `${admin}/ca.der`]);
    expect(headers.headers['content-type']).toBe('application/x-x509-ca-cert');
    // Android's certificate installer lists .crt files.
    const crt = await curl(['-I', `${admin}/ca.crt`]);
    expect(crt.headers['content-disposition']).toBe('attachment; filename="tollgate-ca.crt"');
    // openssl reads the DER as a CA certificate.
    const openssl = await run('openssl', ['x509', '-inform', 'der', '-noout', '-fingerprint', '-sha256'], { input: der.stdout });
    expect(openssl.stdout.toString().replace(/^.*=/, '').trim()).toBe(cert.fingerprint256);
  });

  test("/install gives per-platform steps with the CA fingerprint and this listener's address", async () => {
    const page = await curl([`${admin}/install`]);
    expect(page.status).toBe(200);
    const fingerprint = new X509Certificate(readFileSync(gw.caFile)).fingerprint256;
    expect(page.body).toContain(fingerprint);
    expect(page.body).toContain(`${admin}/ca.pem`);
    for (const text of [
      'certutil -addstore',
      'Group Policy',
      'security add-trusted-cert',
      'MDM',
      'update-ca-certificates',
      'update-ca-trust',
      'certutil -d sql:',
      'keytool -importcert',
      'NODE_EXTRA_CA_CERTS',
      'REQUESTS_CA_BUNDLE',
      '<h2>Android</h2>',
      'Install a certificate',
      `${admin}/ca.crt`,
      '&lt;certificates src="user" /&gt;',
    ]) {
      expect(page.body).toContain(text);
    }
  });

  test('/proxy.pac is valid JavaScript sending the direct list DIRECT and the rest to the explicit listener', async () => {
    const res = await curl([`${admin}/proxy.pac`]);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ns-proxy-autoconfig');
    const find = loadPac(res.body);
    expect(find('https://example.com/', 'example.com')).toBe(`PROXY 127.0.0.1:${gw.explicitPort}`);
    expect(find('https://wiki.corp.test/', 'wiki.corp.test')).toBe('DIRECT');
    expect(find('http://printer.test/', 'printer.test')).toBe('DIRECT');
    expect(find('http://origin.test/', 'origin.test')).toBe(`PROXY 127.0.0.1:${gw.explicitPort}`);
  });

  test('unknown paths get 404, other methods 405, and the listener stays up', async () => {
    expect((await curl([`${admin}/nope`])).status).toBe(404);
    expect((await curl(['-X', 'POST', `${admin}/metrics`])).status).toBe(405);
    const port = gw.gateway.address('admin')!.port;
    const garbage = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let reply = '';
      socket.on('data', (c: Buffer) => (reply += c.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(reply));
      setTimeout(() => socket.destroy(), 3000);
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    // A Host header that is not a host name is never reflected into the page.
    const spoofed = await curl(['-H', 'Host: "><script>x</script>', `${admin}/install`]);
    expect(spoofed.status).toBe(200);
    expect(spoofed.body).not.toContain('<script');
    expect(spoofed.body).toContain(`http://127.0.0.1:${port}/ca.pem`);
    expect((await curl([`${admin}/healthz`])).status).toBe(200);
  });

  test('/readyz answers 503 with the reason while the gateway drains', async () => {
    const socket = net.connect(gw.explicitPort, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`CONNECT other.test:${tls.port} HTTP/1.1\r\nHost: other.test:${tls.port}\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const stopping = gw.gateway.stop(3000);
    const ready = await curl([`${admin}/readyz`]);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/shutting down/);
    socket.destroy();
    await stopping;
  });
});
