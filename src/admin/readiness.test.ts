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
    expect(result).toEqual({ ready: reasons.length === 0, reasons });
  });
});
