import { MissCollapser } from './miss-collapse';

describe('MissCollapser', () => {
  test('the first join leads; later joins wait until it settles; then the key is free again', async () => {
    const collapser = new MissCollapser({ maxWaiters: 2, maxWaitMs: 10_000 });
    const lead = collapser.join('k');
    expect(lead.kind).toBe('lead');
    const a = collapser.join('k');
    const b = collapser.join('k');
    expect([a.kind, b.kind]).toEqual(['wait', 'wait']);
    // A third waiter would exceed the bound: it goes alone.
    expect(collapser.join('k').kind).toBe('alone');
    // Another key is independent.
    expect(collapser.join('other').kind).toBe('lead');
    if (lead.kind !== 'lead' || a.kind !== 'wait' || b.kind !== 'wait') throw new Error('unexpected roles');
    lead.settle();
    lead.settle();
    await expect(Promise.all([a.done, b.done])).resolves.toEqual(['settled', 'settled']);
    expect(collapser.join('k').kind).toBe('lead');
  });

  test('a waiter stops waiting after maxWaitMs', async () => {
    const collapser = new MissCollapser({ maxWaiters: 5, maxWaitMs: 20 });
    collapser.join('k');
    const waiter = collapser.join('k');
    if (waiter.kind !== 'wait') throw new Error('expected to wait');
    await expect(waiter.done).resolves.toBe('timeout');
  });

  test('a URL whose response was not stored is not collapsed until it expires or a response is stored', () => {
    let now = 1_000;
    const collapser = new MissCollapser({ maxWaiters: 5, maxWaitMs: 1000, now: () => now });
    const lead = collapser.join('api');
    if (lead.kind !== 'lead') throw new Error('expected to lead');
    collapser.notStored('api');
    lead.settle();
    // A burst after a no-store answer goes to the origin side by side.
    expect([collapser.join('api').kind, collapser.join('api').kind]).toEqual(['alone', 'alone']);
    expect(collapser.join('other').kind).toBe('lead');
    // Two minutes later the URL is given another chance.
    now += 120_001;
    expect(collapser.join('api').kind).toBe('lead');
    collapser.notStored('page');
    expect(collapser.join('page').kind).toBe('alone');
    collapser.stored('page');
    expect(collapser.join('page').kind).toBe('lead');
  });

  test('maxWaiters 0 turns collapsing off', () => {
    const collapser = new MissCollapser({ maxWaiters: 0, maxWaitMs: 1000 });
    expect(collapser.join('k').kind).toBe('alone');
    expect(collapser.join('k').kind).toBe('alone');
  });
});
