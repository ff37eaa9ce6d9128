import type { StatusDocument } from '../admin/status-json';
import { UsageError } from './args';
import { compareReplicas, describeReplica, parseAdminUrls, type ReplicaStatus } from './status';

const doc = (over: Partial<StatusDocument> = {}): StatusDocument => ({
  version: '0.1.0',
  started_at: '2030-01-01T00:00:00.000Z',
  uptime_seconds: 7_500,
  ready: true,
  reasons: [],
  warnings: [],
  policy: { version: 'abc123', rules: 12, last_reload: { ok: true, at: '2030-01-01T01:00:00.000Z', trigger: 'file change: /etc/tollgate/policies (volume update)' } },
  open_connections: 37,
  listeners: [
    { name: 'explicit', address: '0.0.0.0:3128' },
    { name: 'admin', address: '0.0.0.0:9090' },
  ],
  ca: { fingerprint256: 'AA:BB', not_after: '2040-01-01T00:00:00.000Z' },
  ...over,
});

const ok = (url: string, status: StatusDocument): ReplicaStatus => ({ url, ok: true, status });

describe('tollgate status', () => {
  test('one replica: version, policy, uptime, open flows, listeners, readiness', () => {
    expect(describeReplica(ok('http://10.0.0.5:9090/', doc({ warnings: ['state store (state.redis) unreachable since T'] })))).toEqual([
      'http://10.0.0.5:9090/',
      '  version        0.1.0',
      '  policy         abc123 (12 rules); last reload ok at 2030-01-01T01:00:00.000Z (file change: /etc/tollgate/policies (volume update))',
      '  uptime         2h 5m (since 2030-01-01T00:00:00.000Z)',
      '  open flows     37',
      '  listeners      explicit 0.0.0.0:3128, admin 0.0.0.0:9090',
      '  ready          yes',
      '  warning        state store (state.redis) unreachable since T',
    ]);
    expect(describeReplica({ url: 'http://10.0.0.6:9090/', ok: false, error: 'ECONNREFUSED' })).toEqual(['http://10.0.0.6:9090/', '  unreachable    ECONNREFUSED']);
  });

  test('several replicas: agreement, or what differs after a rollout', () => {
    expect(compareReplicas([ok('a', doc()), ok('b', doc())])).toBe('2 of 2 replicas answered: version 0.1.0 everywhere; policy abc123 everywhere');
    expect(compareReplicas([ok('a', doc()), ok('b', doc({ version: '0.2.0', policy: { ...doc().policy, version: 'def456' } })), { url: 'c', ok: false, error: 'ETIMEDOUT' }])).toBe(
      '2 of 3 replicas answered: VERSIONS DIFFER: 0.1.0, 0.2.0; POLICIES DIFFER: abc123, def456; 1 of 3 unreachable',
    );
  });

  test('--admin takes one or more http(s) URLs', () => {
    expect(parseAdminUrls('http://127.0.0.1:9090, https://gw-2.corp.example:9443/admin').map((u) => u.href)).toEqual(['http://127.0.0.1:9090/', 'https://gw-2.corp.example:9443/admin']);
    expect(() => parseAdminUrls('127.0.0.1:9090')).toThrow(UsageError);
    expect(() => parseAdminUrls('ftp://x')).toThrow(/not an http/);
    expect(() => parseAdminUrls(',')).toThrow(/at least one URL/);
  });
});
