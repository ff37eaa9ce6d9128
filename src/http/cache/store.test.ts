import CachePolicy from 'http-cache-semantics';
import { ResponseStore, type StoredResponse } from './store';

function response(bodyBytes: number, headers: Record<string, string> = {}, requestHeaders: Record<string, string> = {}): { stored: StoredResponse; request: Record<string, string> } {
  const request = { host: 'example.test', ...requestHeaders };
  const policy = new CachePolicy({ url: '/', method: 'GET', headers: request }, { status: 200, headers: { 'cache-control': 'max-age=60', ...headers } }, { shared: true });
  return { stored: { policy, status: 200, statusMessage: 'OK', httpVersion: '1.1', body: Buffer.alloc(bodyBytes) }, request };
}

describe('ResponseStore', () => {
  test('stays within max_size however much is put in, evicting least recently used first', () => {
    const store = new ResponseStore({ maxSizeBytes: 100_000, maxObjectBytes: 20_000 });
    for (let i = 0; i < 50; i++) {
      const { stored, request } = response(10_000);
      expect(store.put(`k${i}`, request, stored)).toBe(true);
      expect(store.stats.bytes).toBeLessThanOrEqual(100_000);
    }
    expect(store.stats.entries).toBeGreaterThan(5);
    expect(store.stats.entries).toBeLessThan(10);
    expect(store.lookup('k49', { host: 'example.test' }).kind).toBe('found');
    expect(store.lookup('k0', { host: 'example.test' }).kind).toBe('uri-miss');
  });

  test('counts headers and overhead, not just body bytes', () => {
    const store = new ResponseStore({ maxSizeBytes: 1_000_000, maxObjectBytes: 1_000_000 });
    const { stored, request } = response(1000, { 'x-big': 'y'.repeat(5000) });
    store.put('k', request, stored);
    expect(store.stats.bytes).toBeGreaterThan(6000);
  });

  test('refuses bodies over max_object_size and keeps nothing for them', () => {
    const store = new ResponseStore({ maxSizeBytes: 100_000, maxObjectBytes: 1000 });
    const { stored, request } = response(1001);
    expect(store.put('k', request, stored)).toBe(false);
    expect(store.stats).toMatchObject({ entries: 0, bytes: 0 });
  });

  test('keeps Vary variants apart and drops them all on invalidate', () => {
    const store = new ResponseStore({ maxSizeBytes: 100_000, maxObjectBytes: 10_000 });
    const en = response(10, { vary: 'Accept-Language' }, { 'accept-language': 'en' });
    const fr = response(20, { vary: 'Accept-Language' }, { 'accept-language': 'fr' });
    store.put('k', en.request, en.stored);
    store.put('k', fr.request, fr.stored);
    const found = store.lookup('k', { host: 'example.test', 'accept-language': 'en' });
    expect(found.kind === 'found' && found.entry.body.length).toBe(10);
    expect(store.lookup('k', { host: 'example.test', 'accept-language': 'de' }).kind).toBe('vary-miss');
    expect(store.lookup('k', { host: 'example.test' }).kind).toBe('vary-miss');
    store.invalidate('k');
    expect(store.stats.entries).toBe(0);
    expect(store.lookup('k', { host: 'example.test', 'accept-language': 'en' }).kind).toBe('uri-miss');
  });

  test('never stores Vary: *', () => {
    const store = new ResponseStore({ maxSizeBytes: 100_000, maxObjectBytes: 10_000 });
    const any = response(10, { vary: '*' });
    expect(store.put('k', any.request, any.stored)).toBe(false);
  });

  test('bounds bytes held by fills in progress', () => {
    const store = new ResponseStore({ maxSizeBytes: 1000, maxObjectBytes: 1000 });
    expect(store.reserveFill(600)).toBe(true);
    expect(store.reserveFill(600)).toBe(false);
    store.releaseFill(600);
    expect(store.reserveFill(600)).toBe(true);
  });
});
