import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load-config';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { tempDir } from './support/pki';
import { cleanEnv, curl, run } from './support/run';

const ROOT = path.resolve(__dirname, '../..');
/** Debian installs haproxy in /usr/sbin, which is not on every user's PATH. */
const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

/** Runs a deployment tool, failing with an actionable message when it is not installed (never a silent skip). */
async function tool(command: string, args: readonly string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const result = await run(command, args, { timeoutMs, env: cleanEnv() });
    return { code: result.code, stdout: result.stdout.toString(), stderr: result.stderr };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`"${command}" is not installed; run ./scripts/install-test-deps (Debian packages docker-compose and haproxy)`);
    }
    throw err;
  }
}

interface ComposeService {
  readonly image?: string;
  readonly build?: unknown;
  readonly volumes?: readonly ({ source?: string; target?: string } | string)[];
  readonly secrets?: readonly ({ source: string } | string)[];
  readonly profiles?: readonly string[];
}

function targets(service: ComposeService): string[] {
  return (service.volumes ?? []).map((v) => (typeof v === 'string' ? (v.split(':')[1] ?? '') : (v.target ?? '')));
}

describe('deployment files', () => {
  test('docker-compose.yml is valid, with and without the scaleout profile', async () => {
    const cwd = ['--project-directory', ROOT, '-f', path.join(ROOT, 'docker-compose.yml')];
    const plain = await tool('docker-compose', [...cwd, 'config', '-q']);
    expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 0, stderr: '' });
    const scaled = await tool('docker-compose', [...cwd, '--profile', 'scaleout', 'config']);
    expect(scaled.code).toBe(0);
    const services = (parseYaml(scaled.stdout) as { services: Record<string, ComposeService> }).services;
    expect(Object.keys(services).sort()).toEqual(['client', 'gateway', 'gateway-1', 'gateway-2', 'gateway-3', 'haproxy', 'origin']);
    for (const name of ['gateway-1', 'gateway-2', 'gateway-3']) {
      const replica = services[name]!;
      expect(replica.build).toBeDefined();
      expect(targets(replica)).toEqual(expect.arrayContaining(['/etc/tollgate/policies', '/etc/tollgate/tollgate.yaml']));
      expect((replica.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source)).sort()).toEqual(['tollgate_ca_cert', 'tollgate_ca_key']);
    }
    expect(targets(services.haproxy!)).toContain('/usr/local/etc/haproxy/haproxy.cfg');
  });

  test('the compose gateway configurations are valid tollgate configurations; replicas require PROXY v2', () => {
    const single = parseConfig(readFileSync(path.join(ROOT, 'deploy/compose/tollgate.yaml'), 'utf8'), path.join(ROOT, 'deploy/compose/tollgate.yaml'));
    expect(single.listen.proxyProtocol).toEqual([]);
    expect(single.listen.admin).toEqual({ host: '0.0.0.0', port: 9090 });
    const replica = parseConfig(readFileSync(path.join(ROOT, 'deploy/compose/tollgate-scaleout.yaml'), 'utf8'), path.join(ROOT, 'deploy/compose/tollgate-scaleout.yaml'));
    expect(replica.listen.proxyProtocol).toEqual(['explicit']);
    expect(replica.ca.cert).toBe('/run/secrets/tollgate_ca_cert');
    expect(readFileSync(path.join(ROOT, 'deploy/haproxy/haproxy.cfg'), 'utf8')).toMatch(/send-proxy-v2/);
    const systemd = parseConfig(readFileSync(path.join(ROOT, 'deploy/systemd/tollgate.yaml'), 'utf8'), '/etc/tollgate/tollgate.yaml');
    expect(systemd.ca.key).toBe('/var/lib/tollgate/ca.key');
    const unit = readFileSync(path.join(ROOT, 'deploy/systemd/tollgate.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/tollgate\/bin\/tollgate --config \/etc\/tollgate\/tollgate\.yaml$/m);
  });

  test('the shipped HAProxy configuration passes haproxy -c', async () => {
    const result = await tool(HAPROXY, ['-c', '-f', path.join(ROOT, 'deploy/haproxy/haproxy.cfg')]);
    expect(`${result.stdout}${result.stderr}`).toMatch(/Configuration file is valid/);
    expect(result.code).toBe(0);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('real HAProxy (the shipped configuration) in front of a gateway requiring PROXY v2', () => {
  let origin: Origin;
  let gw: TestGateway;
  let haproxy: ChildProcess | null = null;
  let haproxyPort = 0;
  let haproxyLog = '';

  beforeAll(async () => {
    origin = await startHttpOrigin('behind-haproxy');
    gw = await startTestGateway({
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      allowedPorts: { tunnel: [origin.port], http: [origin.port] },
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  proxy_protocol: [explicit]',
    });
    haproxyPort = await freePort();
    // The shipped file, pointed at this gateway: same modes, checks and send-proxy-v2.
    const shipped = readFileSync(path.join(ROOT, 'deploy/haproxy/haproxy.cfg'), 'utf8');
    const cfg = shipped
      .replace(/^\s*log stdout.*$/m, '')
      .replace(/maxconn [0-9]+/, 'maxconn 200')
      .replace(/inter 2s/, 'inter 200ms')
      .replace('bind :3128', `bind 127.0.0.1:${haproxyPort}`)
      .replace(/check port 9090/, `check port ${gw.gateway.address('admin')!.port}`)
      .replace(/ resolvers docker/, '')
      .replace(/^resolvers docker[\s\S]*$/m, '')
      .replace(/^\s*server gateway-[23] .*$/gm, '')
      .replace(/server gateway-1 gateway-1:3128/, `server gateway-1 127.0.0.1:${gw.explicitPort}`);
    const cfgFile = path.join(tempDir('haproxy'), 'haproxy.cfg');
    writeFileSync(cfgFile, cfg);
    try {
      haproxy = spawn(HAPROXY, ['-db', '-f', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`haproxy could not start (${String(err)}); run ./scripts/install-test-deps`);
    }
    haproxy.on('error', (err) => (haproxyLog += `spawn error: ${err.message}; run ./scripts/install-test-deps\n`));
    haproxy.stdout?.on('data', (c: Buffer) => (haproxyLog += c.toString()));
    haproxy.stderr?.on('data', (c: Buffer) => (haproxyLog += c.toString()));
  });

  afterAll(async () => {
    haproxy?.kill('SIGTERM');
    await gw.stop();
    await origin.close();
  });

  test("requests through HAProxy are served, and HAProxy's health check on /readyz marks the gateway up", async () => {
    const result = await eventually(
      () => curl(['-sS', '-x', `http://127.0.0.1:${haproxyPort}`, `http://origin.test:${origin.port}/hello`], 5000),
      (r) => r.status === 200,
      15_000,
    );
    expect({ status: result.status, body: result.body, log: result.status === 200 ? '' : haproxyLog }).toEqual({ status: 200, body: 'hello from behind-haproxy\n', log: '' });
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request'));
    // The gateway refuses connections without a PROXY header, so a served request proves HAProxy sent one.
    expect(records.find((x) => x.type === 'request')).toMatchObject({ client: '127.0.0.1', status: 200 });
    expect(gw.logs().some((l) => l.msg === 'connection refused: no valid PROXY protocol v2 header')).toBe(false);
    // Several /readyz checks have run by now (every 200 ms, 2 failures mark a server down).
    await new Promise((r) => setTimeout(r, 1000));
    expect(haproxyLog).not.toMatch(/gateway-1 is DOWN/);
  });
});
