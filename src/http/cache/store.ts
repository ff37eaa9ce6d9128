import type CachePolicy from 'http-cache-semantics';
import { LRUCache } from 'lru-cache';

/** One stored response: the origin's status, headers (inside `policy`) and complete body. */
export interface StoredResponse {
  /** http-cache-semantics' view of the exchange; the response headers live here. */
  readonly policy: CachePolicy;
  readonly status: number;
  readonly statusMessage: string;
  readonly httpVersion: string;
  readonly body: Buffer;
}

export interface StoreOptions {
  /** Bound on everything kept: bodies, headers and a fixed per-entry overhead (`cache.max_size`). */
  readonly maxSizeBytes: number;
  /** Responses with larger bodies are never stored (`cache.max_object_size`). */
  readonly maxObjectBytes: number;
}

export type Lookup = { readonly kind: 'found'; readonly entry: StoredResponse } | { readonly kind: 'uri-miss' } | { readonly kind: 'vary-miss' };

/** Bookkeeping per entry that the byte count cannot see (maps, objects, the key itself). */
const ENTRY_OVERHEAD_BYTES = 512;

interface Slot {
  readonly primaryKey: string;
  /** The full key (URL plus the Vary values), counted in the entry's size. */
  readonly key: string;
  readonly response: StoredResponse;
}

interface Variants {
  /** Lower-case request header names of the response's Vary, sorted; empty = no Vary. */
  readonly names: readonly string[];
  readonly keys: Set<string>;
}

type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

function headerBytes(headers: Readonly<Record<string, unknown>>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) bytes += name.length + (Array.isArray(value) ? value.join('').length : String(value ?? '').length) + 4;
  return bytes;
}

function sizeOf(key: string, response: StoredResponse): number {
  const policy = response.policy.toObject();
  // Keys are held twice (the LRU and the variant index), as UTF-16.
  return response.body.length + headerBytes(policy.resh) + (policy.reqh ? headerBytes(policy.reqh) : 0) + key.length * 4 + ENTRY_OVERHEAD_BYTES;
}

/** Parses a Vary field value into sorted lower-case names; `*` is returned as ['*']. */
export function varyNames(vary: string | undefined): string[] {
  if (vary === undefined) return [];
  const names = vary
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  return [...new Set(names)].sort();
}

function variantKey(primaryKey: string, names: readonly string[], headers: RequestHeaders): string {
  if (names.length === 0) return primaryKey;
  const values = names.map((name) => {
    const value = headers[name];
    return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
  });
  return `${primaryKey}\n${JSON.stringify(values)}`;
}

/**
 * The in-memory response store: an LRU bounded by bytes, one slot per (URL, Vary combination).
 * The secondary key is built from the request headers the stored response's `Vary` names, so a
 * variant stored for one combination is not even found for another (and http-cache-semantics
 * checks Vary again before anything is served).
 */
export class ResponseStore {
  private readonly lru: LRUCache<string, Slot>;
  private readonly variants = new Map<string, Variants>();
  /** Bytes held by fills still streaming; bounded by max_size too, so many parallel fills cannot blow the budget. */
  private fillingBytes = 0;

  constructor(readonly options: StoreOptions) {
    this.lru = new LRUCache<string, Slot>({
      maxSize: Math.max(1, options.maxSizeBytes),
      sizeCalculation: (slot) => Math.max(1, sizeOf(slot.key, slot.response)),
      dispose: (slot, key, reason) => {
        // A replacement keeps the key (and its place in the variant index).
        if (reason !== 'set') this.forget(slot.primaryKey, key);
      },
    });
  }

  lookup(primaryKey: string, headers: RequestHeaders): Lookup {
    const variants = this.variants.get(primaryKey);
    if (!variants) return { kind: 'uri-miss' };
    const slot = this.lru.get(variantKey(primaryKey, variants.names, headers));
    return slot ? { kind: 'found', entry: slot.response } : { kind: 'vary-miss' };
  }

  /** Stores a complete response; returns false when it does not fit (then nothing is kept). */
  put(primaryKey: string, headers: RequestHeaders, response: StoredResponse): boolean {
    if (response.body.length > this.options.maxObjectBytes) return false;
    const names = varyNames(response.policy.toObject().resh['vary'] as string | undefined);
    if (names.includes('*')) return false;
    const existing = this.variants.get(primaryKey);
    if (existing && existing.names.join(',') !== names.join(',')) {
      // The origin changed what it varies on: the old variants were selected by other headers.
      this.invalidate(primaryKey);
    }
    const key = variantKey(primaryKey, names, headers);
    const size = sizeOf(key, response);
    if (size > this.options.maxSizeBytes) return false;
    let variants = this.variants.get(primaryKey);
    if (!variants) {
      variants = { names, keys: new Set() };
      this.variants.set(primaryKey, variants);
    }
    variants.keys.add(key);
    this.lru.set(key, { primaryKey, key, response });
    if (!this.lru.has(key)) {
      this.forget(primaryKey, key);
      return false;
    }
    return true;
  }

  /** Drops every variant of a URL (after an unsafe method, RFC 9111 section 4.4). */
  invalidate(primaryKey: string): void {
    const variants = this.variants.get(primaryKey);
    if (!variants) return;
    for (const key of [...variants.keys]) this.lru.delete(key);
    this.variants.delete(primaryKey);
  }

  /** Reserves room for a fill in progress; false = over budget, do not fill. */
  reserveFill(bytes: number): boolean {
    if (this.fillingBytes + bytes > this.options.maxSizeBytes) return false;
    this.fillingBytes += bytes;
    return true;
  }

  releaseFill(bytes: number): void {
    this.fillingBytes = Math.max(0, this.fillingBytes - bytes);
  }

  get stats(): { entries: number; bytes: number; maxBytes: number; fillingBytes: number } {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.options.maxSizeBytes, fillingBytes: this.fillingBytes };
  }

  clear(): void {
    this.lru.clear();
    this.variants.clear();
  }

  private forget(primaryKey: string, key: string): void {
    const variants = this.variants.get(primaryKey);
    if (!variants) return;
    variants.keys.delete(key);
    if (variants.keys.size === 0) this.variants.delete(primaryKey);
  }
}
