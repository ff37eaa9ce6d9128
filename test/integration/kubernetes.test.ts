import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load-config';
import type { GatewayConfig } from '../../src/config/schema';
import { loadPolicy } from '../../src/policy/load-policy';
import { loadOrCreateAuthority } from '../../src/tls/ca';
import { SUPPORTED_ACTIONS } from '../../src/config/runtime';
import { tempDir } from './support/pki';
import { cleanEnv, run } from './support/run';

/**
 * deploy/kubernetes, rendered by the real `kubectl kustomize` (offline), every object validated
 * against the Kubernetes API schemas (kubernetes-models, generated from Kubernetes' OpenAPI),
 * and the invariants the gateway depends on checked: non-root with a read-only root file system,
 * probes on the admin listener, a drain that fits terminationGracePeriodSeconds, a CA key the
 * gateway accepts, and volumes the kubelet can update live.
 */

const ROOT = path.resolve(__dirname, '../..');
const KUBERNETES = path.join(ROOT, 'deploy/kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped YAML, checked field by field below.
type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

async function render(dir: string): Promise<K8sObject[]> {
  let result: Awaited<ReturnType<typeof run>>;
  try {
    result = await run('kubectl', ['kustomize', path.join(KUBERNETES, dir)], { timeoutMs: 60_000, env: cleanEnv() });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl is not installed; run ./scripts/install-test-deps (it renders kustomize offline)');
    throw err;
  }
  if (result.code !== 0) throw new Error(`kubectl kustomize ${dir} failed (kubectl 1.21 or later is needed): ${result.stderr}`);
  return parseAllDocuments(result.stdout.toString()).map((doc) => doc.toJS() as K8sObject);
}

/** Validates against the schema of its apiVersion and kind; throws naming the object and the problem. */
function validate(object: K8sObject): void {
  // biome-ignore lint/suspicious/noExplicitAny: the module is chosen by apiVersion at run time.
  const group: Record<string, any> = require(`kubernetes-models/${object.apiVersion}`);
  const Model = group[object.kind];
  if (!Model) throw new Error(`${object.apiVersion} ${object.kind}: no schema (unknown kind or version)`);
  try {
    new Model(object).validate();
  } catch (err) {
    throw new Error(`${object.kind}/${object.metadata.name}: ${(err as Error).message}`);
  }
}

/** The one object of a kind and name (a generated ConfigMap's name may carry kustomize's hash suffix). */
function one(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter(
    (o) => o.kind === kind && (o.metadata.name === name || (kind === 'ConfigMap' && /^-[a-z0-9]{10}$/.test(o.metadata.name.slice(name.length)) && o.metadata.name.startsWith(name))),
  );
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return found[0]!;
}

/** Seconds of a `sleep N` preStop command. */
function preStopSeconds(container: { lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds: number } } } }): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  expect(command[0]).toBe('sleep');
  return Number(command[1]);
}

function bytesOf(quantity: string): number {
  const match = /^([0-9]+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!match) throw new Error(`unexpected quantity ${quantity}`);
  return Number(match[1]) * { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, '': 1 }[match[2] ?? '']!;
}

describe.each(['base', 'overlays/example'])('deploy/kubernetes/%s', (dir) => {
  let objects: K8sObject[];
  let config: GatewayConfig;
  // biome-ignore lint/suspicious/noExplicitAny: see K8sObject.
  let pod: any;
  // biome-ignore lint/suspicious/noExplicitAny: see K8sObject.
  let gateway: any;
  // biome-ignore lint/suspicious/noExplicitAny: see K8sObject.
  const mountOf = (name: string): any => gateway.volumeMounts.find((m: { name: string }) => m.name === name);
  // biome-ignore lint/suspicious/noExplicitAny: see K8sObject.
  const volumeOf = (name: string): any => pod.volumes.find((v: { name: string }) => v.name === name);

  beforeAll(async () => {
    objects = await render(dir);
    pod = one(objects, 'Deployment', 'tollgate').spec.template.spec;
    gateway = pod.containers.find((c: { name: string }) => c.name === 'tollgate');
    const configMap = one(objects, 'ConfigMap', 'tollgate-config');
    const configPath = path.join(mountOf('config').mountPath, 'tollgate.yaml');
    expect(gateway.args).toEqual(['--config', configPath]);
    config = parseConfig(configMap.data!['tollgate.yaml']!, configPath);
  }, 60_000);

  test('every object is valid against the Kubernetes schemas (and the check rejects an invalid one)', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(
      expect.arrayContaining(['ConfigMap', 'ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'Service']),
    );
    for (const object of objects) validate(object);
    const broken = structuredClone(one(objects, 'Deployment', 'tollgate'));
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'proxy-port';
    expect(() => validate(broken)).toThrow(/containerPort must be integer/);
    expect(() => validate({ ...broken, kind: 'Deploymnet' })).toThrow(/no schema/);
  });

  test('the gateway runs as non-root with a read-only root file system, limited, on the configured ports', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: expect.any(Number), seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(pod.automountServiceAccountToken).toBe(false);
    for (const container of [...pod.initContainers, ...pod.containers]) {
      expect({ name: container.name, securityContext: container.securityContext }).toEqual({
        name: container.name,
        securityContext: expect.objectContaining({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }),
      });
      for (const kind of ['requests', 'limits']) expect(Object.keys(container.resources[kind]).sort()).toEqual(['cpu', 'memory']);
    }
    // The cache is held in memory per replica: the limit must leave room for it.
    expect(bytesOf(gateway.resources.limits.memory)).toBeGreaterThanOrEqual(2 * config.cache.maxSizeBytes);
    const ports = Object.fromEntries(gateway.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
    expect(ports).toEqual({ proxy: config.listen.explicit!.port, admin: config.listen.admin!.port });
    expect(config.listen.explicit!.host).toBe('0.0.0.0');
    // What the gateway writes goes to mounted volumes, never the image.
    const writable = gateway.volumeMounts.filter((m: { readOnly?: boolean }) => !m.readOnly).map((m: { mountPath: string }) => m.mountPath);
    expect(writable.some((dirPath: string) => config.pinning.stateFile!.startsWith(`${dirPath}/`))).toBe(true);
    expect(config.audit.file).toBe('stdout');
  });

  test('probes: readiness on /readyz, liveness on /healthz, on the admin port', () => {
    expect(gateway.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(gateway.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(gateway.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
  });

  test('the drain fits: terminationGracePeriodSeconds covers preStop, limits.shutdown_grace and the audit flush', () => {
    const preStop = preStopSeconds(gateway);
    const grace = config.limits.shutdownGraceMs / 1000;
    const total = pod.terminationGracePeriodSeconds;
    expect(preStop).toBeGreaterThanOrEqual(3);
    // The syslog sink takes up to 3 s to deliver its last records after the drain.
    expect(total).toBeGreaterThanOrEqual(preStop + grace + 5);
    // And not so long that a stuck replica lingers for no reason.
    expect(total).toBeLessThanOrEqual(preStop + grace + 15);
  });

  test('the CA: a Secret mounted 0400, copied as the gateway user into memory, mode 0400, and read from there', () => {
    const secret = volumeOf('ca-secret');
    expect(secret.secret).toEqual({ secretName: 'tollgate-ca', defaultMode: 0o400 });
    expect(volumeOf('ca').emptyDir.medium).toBe('Memory');
    const copy = pod.initContainers.find((c: { name: string }) => c.name === 'ca-key');
    const copyDir = copy.volumeMounts.find((m: { name: string }) => m.name === 'ca').mountPath;
    const secretDir = copy.volumeMounts.find((m: { name: string }) => m.name === 'ca-secret').mountPath;
    expect(copy.command).toEqual(['install', '-m', '0400', `${secretDir}/ca.pem`, `${secretDir}/ca.key`, `${copyDir}/`]);
    expect(copy.image).toBe(gateway.image);
    expect(mountOf('ca')).toEqual({ name: 'ca', mountPath: copyDir, readOnly: true });
    expect(config.ca).toMatchObject({ cert: `${copyDir}/ca.pem`, key: `${copyDir}/ca.key` });
    expect(mountOf('ca-secret')).toBeUndefined();
  });

  test('configuration, policies and users are whole-directory mounts the kubelet updates live; the policies compile', () => {
    for (const mount of gateway.volumeMounts) expect({ name: mount.name, subPath: mount.subPath }).toEqual({ name: mount.name, subPath: undefined });
    expect(config.policiesDir).toBe(mountOf('policies').mountPath);
    const policies = one(objects, 'ConfigMap', 'tollgate-policies');
    // A stable name: `kubectl apply` updates it in place and the replicas reload it.
    expect(policies.metadata.name).toBe('tollgate-policies');
    expect(volumeOf('policies').configMap.name).toBe('tollgate-policies');
    // The configuration's name carries a hash: a change rolls the Deployment.
    expect(one(objects, 'ConfigMap', 'tollgate-config').metadata.name).toMatch(/^tollgate-config-[a-z0-9]{10}$/);
    const policyDir = tempDir('k8s-policies');
    for (const [name, text] of Object.entries(policies.data!)) writeFileSync(path.join(policyDir, name), text);
    const compiled = loadPolicy(policyDir, {
      defaultAction: config.defaultAction,
      allowedPorts: config.allowedPorts,
      supportedActions: SUPPORTED_ACTIONS,
      authConfigured: config.auth.usersFile !== null,
    });
    expect(compiled.rules.length).toBeGreaterThan(0);
    if (config.auth.usersFile) {
      expect(path.dirname(config.auth.usersFile)).toBe(mountOf('users').mountPath);
      expect(volumeOf('users').secret).toMatchObject({ secretName: 'tollgate-users', defaultMode: 0o400 });
    }
    if (config.state.passwordFile) {
      expect(path.dirname(config.state.passwordFile)).toBe(mountOf('redis-password').mountPath);
    }
  });

  test('Service keeps client addresses; HPA scales the Deployment on CPU; PDB and NetworkPolicy select the replicas', () => {
    const labels = one(objects, 'Deployment', 'tollgate').spec.template.metadata.labels;
    const selects = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const service = one(objects, 'Service', 'tollgate').spec;
    expect(service.type).toBe('LoadBalancer');
    expect(service.externalTrafficPolicy === 'Local' || config.listen.proxyProtocol.includes('explicit')).toBe(true);
    expect(service.ports).toEqual([{ name: 'proxy', port: 3128, targetPort: 'proxy', protocol: 'TCP' }]);
    expect(selects(service.selector)).toBe(true);
    expect(one(objects, 'Service', 'tollgate-admin').spec.type).toBe('ClusterIP');

    const hpa = one(objects, 'HorizontalPodAutoscaler', 'tollgate').spec;
    expect(hpa.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'tollgate' });
    expect(hpa.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } }]);
    expect(hpa.minReplicas).toBeGreaterThanOrEqual(2);
    // The HPA owns the count: a replicas field would reset it on every apply.
    expect(one(objects, 'Deployment', 'tollgate').spec.replicas).toBeUndefined();
    expect(gateway.resources.requests.cpu).toBeDefined();

    const pdb = one(objects, 'PodDisruptionBudget', 'tollgate').spec;
    expect(selects(pdb.selector.matchLabels)).toBe(true);
    expect(pdb.maxUnavailable ?? 0).toBeGreaterThanOrEqual(1);

    const policy = one(objects, 'NetworkPolicy', 'tollgate').spec;
    expect(selects(policy.podSelector.matchLabels)).toBe(true);
    expect(policy.policyTypes).toEqual(['Ingress']);
    const admin = policy.ingress.filter((rule: { ports: { port: string | number }[] }) => rule.ports.some((p) => p.port === 'admin' || p.port === config.listen.admin!.port));
    expect(admin).toEqual([{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 'admin', protocol: 'TCP' }] }]);
    expect(policy.ingress.filter((rule: { ports: { port: string }[] }) => rule.ports.some((p) => p.port === 'proxy'))).toHaveLength(1);
  });
});

describe('deploy/kubernetes', () => {
  test('the base ships the repository policies unchanged', () => {
    const shipped = readdirSync(path.join(ROOT, 'policies')).sort();
    expect(readdirSync(path.join(KUBERNETES, 'base/policies')).sort()).toEqual(shipped);
    for (const name of shipped) expect(readFileSync(path.join(KUBERNETES, 'base/policies', name), 'utf8')).toBe(readFileSync(path.join(ROOT, 'policies', name), 'utf8'));
  });

  test('a Secret-mounted key is refused as the kubelet leaves it (0440 with fsGroup); the init container’s copy is accepted', async () => {
    const dir = tempDir('k8s-ca');
    const logger = pino({ level: 'silent' });
    const generated = path.join(dir, 'generated');
    mkdirSync(generated);
    await loadOrCreateAuthority({ certPath: path.join(generated, 'ca.pem'), keyPath: path.join(generated, 'ca.key'), logger });
    // What the kubelet makes of defaultMode 0400 when the pod has an fsGroup.
    const secret = path.join(dir, 'ca-secret');
    mkdirSync(secret);
    for (const name of ['ca.pem', 'ca.key']) {
      copyFileSync(path.join(generated, name), path.join(secret, name));
      chmodSync(path.join(secret, name), 0o440);
    }
    await expect(loadOrCreateAuthority({ certPath: path.join(secret, 'ca.pem'), keyPath: path.join(secret, 'ca.key'), logger })).rejects.toThrow(/mode 0440: readable or writable by group or others/);

    // The init container's own command, from the rendered manifest, with its directories here.
    const objects = await render('base');
    const copy = one(objects, 'Deployment', 'tollgate').spec.template.spec.initContainers.find((c: { name: string }) => c.name === 'ca-key');
    const memory = path.join(dir, 'memory');
    mkdirSync(memory);
    const command = (copy.command as string[]).map((arg) => arg.replace('/etc/tollgate/ca-secret', secret).replace('/run/tollgate/ca', memory));
    const result = await run(command[0]!, command.slice(1));
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(statSync(path.join(memory, 'ca.key')).mode & 0o777).toBe(0o400);
    const { authority } = await loadOrCreateAuthority({ certPath: path.join(memory, 'ca.pem'), keyPath: path.join(memory, 'ca.key'), logger });
    expect(authority.certPem).toBe(readFileSync(path.join(generated, 'ca.pem'), 'utf8'));
  });
});
