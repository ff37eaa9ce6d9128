import { Writable } from 'node:stream';
import pino from 'pino';
import { type PinningLedger, PinningMonitor } from './pinning-monitor';

function capture(): { logger: pino.Logger; messages: () => string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), messages: () => lines.map((l) => String((JSON.parse(l) as { msg: string }).msg)) };
}

const OPTIONS = { mode: 'auto_splice' as const, minClients: 3, windowMs: 60_000, spliceForMs: 3_600_000, stateFile: null, syncIntervalMs: 60_000 };
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('pinning detection with a fleet ledger', () => {
  test('decides on the fleet-wide count the ledger returns, not on what this replica saw alone', async () => {
    const claims: string[] = [];
    const ledger: PinningLedger = {
      observe: () => Promise.resolve(3),
      claimSplice: (name) => {
        claims.push(name);
        return Promise.resolve({ claimed: true, until: Date.now() + 60_000 });
      },
      splicedNames: () => Promise.resolve(new Map()),
    };
    const switched: string[] = [];
    const monitor = new PinningMonitor({ ...OPTIONS, ledger }, capture().logger, (name) => switched.push(name));
    monitor.record('app.test', '10.0.0.1', 'alert-unknown-ca', true);
    await settle();
    expect(claims).toEqual(['app.test']);
    expect(switched).toEqual(['app.test']);
    expect(monitor.isSpliced('app.test')).toBe(true);
    monitor.stop();
  });

  test('a switch another replica already claimed is followed without a second audit record', async () => {
    const until = Date.now() + 60_000;
    const ledger: PinningLedger = {
      observe: () => Promise.resolve(5),
      claimSplice: () => Promise.resolve({ claimed: false, until }),
      splicedNames: () => Promise.resolve(new Map()),
    };
    const switched: string[] = [];
    const monitor = new PinningMonitor({ ...OPTIONS, ledger }, capture().logger, (name) => switched.push(name));
    monitor.record('app.test', '10.0.0.1', 'alert-unknown-ca', true);
    await settle();
    expect(monitor.isSpliced('app.test')).toBe(true);
    expect(switched).toEqual([]);
    monitor.stop();
  });

  test('an unreachable ledger makes detection report-only: nothing is switched, names already spliced stay', async () => {
    let reachable = true;
    const down = (): Promise<never> => Promise.reject(new Error('ECONNREFUSED'));
    const ledger: PinningLedger = {
      observe: () => (reachable ? Promise.resolve(1) : down()),
      claimSplice: () => down(),
      splicedNames: () => (reachable ? Promise.resolve(new Map([['kept.test', Date.now() + 60_000]])) : down()),
    };
    const { logger, messages } = capture();
    const switched: string[] = [];
    const monitor = new PinningMonitor({ ...OPTIONS, ledger }, logger, (name) => switched.push(name));
    await monitor.sync();
    expect(monitor.isSpliced('kept.test')).toBe(true);
    reachable = false;
    for (const client of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) monitor.record('app.test', client, 'alert-unknown-ca', true);
    await settle();
    await monitor.sync();
    expect(switched).toEqual([]);
    expect(monitor.isSpliced('app.test')).toBe(false);
    expect(monitor.isSpliced('kept.test')).toBe(true);
    expect(messages()).toContain('certificate pinning detected, but the state store is unreachable: report-only, still inspected');
    expect(messages().filter((m) => m.startsWith('pinning detection: the state store is unreachable'))).toHaveLength(1);
    reachable = true;
    await monitor.sync();
    expect(messages()).toContain('pinning detection: the state store answers again; switching by fleet-wide counts resumes');
    monitor.stop();
  });
});
