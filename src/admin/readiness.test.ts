import { checkReadiness } from './readiness';

const NOW = new Date('2030-01-01T00:00:00Z');
const base = { configured: ['explicit', 'admin'], bound: ['explicit', 'admin'], caNotAfter: new Date('2031-01-01T00:00:00Z'), policyRules: 3, draining: false };

describe('readiness', () => {
  test.each([
    ['all good', {}, []],
    ['a listener not bound', { bound: ['admin'] }, ['listeners not bound: explicit']],
    ['no CA', { caNotAfter: null }, ['CA not loaded']],
    ['an expired CA', { caNotAfter: new Date('2029-12-31T00:00:00Z') }, ['CA expired at 2029-12-31T00:00:00.000Z']],
    ['no policy', { policyRules: null }, ['no valid policy in force']],
    ['draining', { draining: true }, ['shutting down: draining in-flight work']],
  ])('%s', (_name, change, reasons) => {
    const result = checkReadiness({ ...base, ...change }, NOW);
    expect(result).toEqual({ ready: reasons.length === 0, reasons, warnings: [] });
  });

  test('an unreachable shared dependency is a warning: every replica loses it at once, none leaves the rotation for it', () => {
    const since = new Date('2029-12-31T23:00:00Z');
    const result = checkReadiness({ ...base, stateStore: { up: false, since }, auditSyslog: { connected: false, since, queued: 12, spilled: 3 } }, NOW);
    expect(result.ready).toBe(true);
    expect(result.warnings).toEqual([
      'state store (state.redis) unreachable since 2029-12-31T23:00:00.000Z: proxy authentication refuses to check credentials (fail closed); pinning detection is report-only',
      'syslog collector (audit.syslog) unreachable since 2029-12-31T23:00:00.000Z: 12 records waiting in the buffer, 3 spilled to audit.file so far',
    ]);
    expect(checkReadiness({ ...base, stateStore: { up: true, since }, auditSyslog: { connected: true, since, queued: 0, spilled: 0 } }, NOW).warnings).toEqual([]);
  });
});
