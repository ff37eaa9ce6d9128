import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import { LRUCache } from 'lru-cache';
import { GatewayError, isGatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';
import { publish } from '../observability/events';
import type { CertificateAuthority } from './ca';
import type { LeafKeyPool } from './key-pool';
import { leafSubjectKey, MAX_LEAF_VALIDITY_MS, mintLeaf, normaliseLeafSubject, type LeafSubject, type MintedLeaf } from './mint-leaf';

export interface LeafContext {
  readonly secureContext: tls.SecureContext;
  readonly leaf: MintedLeaf;
  /** Clock time (ms since the epoch) of the mint. */
  readonly mintedAt: number;
}

export interface LeafCacheOptions {
  readonly authority: CertificateAuthority;
  readonly keys: LeafKeyPool;
  /** Default 10 000. Each entry holds an OpenSSL SSL_CTX of roughly 25 KB. */
  readonly maxEntries?: number;
  /** Leaf validity. Default 30 days; at most 47. */
  readonly validityMs?: number;
  /** Re-mint once less than this much validity remains. Default a third of the validity. */
  readonly refreshBeforeMs?: number;
  readonly logger: Logger;
  /** Called after each successful mint with the normalised name and its duration, for metrics. */
  readonly onMint?: (name: string, ms: number) => void;
  /**
   * 48 bytes of session ticket keys shared by every context of this cache. Default: random per
   * cache. Pass the tls.Server's own keys when the server switches contexts through SNICallback:
   * OpenSSL then encrypts tickets with the server's initial context, not the leaf's.
   */
  readonly ticketKeys?: Buffer;
  /** Clock in ms since the epoch; injectable for tests. Default Date.now. */
  readonly clock?: () => number;
}

interface Entry {
  readonly context: LeafContext;
  /** Clock time from which the entry is no longer served. */
  readonly refreshAt: number;
}

const DAY_MS = 24 * 3600_000;
/**
 * Floor on an entry's life. When the CA itself is close to expiry, leaves are clamped to its
 * notAfter and the refresh point can already be past; without a floor every handshake would mint.
 */
const MIN_ENTRY_LIFE_MS = 60_000;

function configError(message: string): GatewayError {
  return new GatewayError('TG_ERR_CONFIG', 'config', message);
}

/**
 * Minted leaves as ready TLS secure contexts, one per destination name, bounded by LRU.
 *
 * An entry is served only while more than `refreshBeforeMs` of its validity remains, so a
 * long-lived client never receives an almost-expired certificate; after that the next `get`
 * mints a fresh one. Concurrent misses for one name share a single mint, and a failed mint is not
 * cached, so the next call retries.
 *
 * All contexts share one set of session ticket keys, so a client resuming with a ticket issued
 * under an earlier certificate for the same name still resumes after a re-mint (each
 * SecureContext otherwise draws its own random keys).
 */
export class LeafCache {
  private readonly authority: CertificateAuthority;
  private readonly keys: LeafKeyPool;
  private readonly entries: LRUCache<string, Entry>;
  private readonly inFlight = new Map<string, Promise<LeafContext>>();
  private readonly validityMs: number;
  private readonly refreshBeforeMs: number;
  private readonly logger: Logger;
  private readonly onMint: ((name: string, ms: number) => void) | undefined;
  private readonly ticketKeys: Buffer;
  private readonly clock: () => number;
  /** Sent after every leaf so clients can build a path to the root they trust. */
  private readonly chainPem: string;

  constructor(opts: LeafCacheOptions) {
    const maxEntries = opts.maxEntries ?? 10_000;
    const validityMs = opts.validityMs ?? 30 * DAY_MS;
    const refreshBeforeMs = opts.refreshBeforeMs ?? Math.floor(validityMs / 3);
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw configError(`leaf cache size must be a positive integer, got ${maxEntries}`);
    if (!(validityMs > 0) || validityMs > MAX_LEAF_VALIDITY_MS) {
      throw configError(`leaf validity must be between 0 and 47 days, got ${validityMs} ms`);
    }
    if (!(refreshBeforeMs >= 0) || refreshBeforeMs >= validityMs) {
      throw configError(`leaf refresh margin must be at least 0 and less than the validity (${validityMs} ms), got ${refreshBeforeMs} ms`);
    }
    const ticketKeys = opts.ticketKeys ?? randomBytes(48);
    if (ticketKeys.length !== 48) throw configError(`session ticket keys must be 48 bytes, got ${ticketKeys.length}`);

    this.authority = opts.authority;
    this.keys = opts.keys;
    this.validityMs = validityMs;
    this.refreshBeforeMs = refreshBeforeMs;
    this.logger = opts.logger;
    this.onMint = opts.onMint;
    this.ticketKeys = ticketKeys;
    this.clock = opts.clock ?? Date.now;
    this.chainPem = opts.authority.chainPems.join('');
    // Freshness is checked against `refreshAt` on each hit rather than with lru-cache's ttl, so
    // the one injectable clock governs both the certificate dates and the refresh.
    this.entries = new LRUCache<string, Entry>({ max: maxEntries });
  }

  /** Number of cached entries, including any past their refresh point not yet looked up. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The context for `subject`: a resolved promise on a hit, one shared mint on concurrent misses.
   * Rejects with TG_ERR_BAD_TARGET for a name that cannot go in a certificate, TG_ERR_CA when
   * minting fails.
   */
  get(subject: LeafSubject): Promise<LeafContext> {
    let normalised: LeafSubject;
    try {
      normalised = normaliseLeafSubject(subject);
    } catch (err) {
      return Promise.reject(err);
    }
    const key = leafSubjectKey(normalised);
    const entry = this.entries.get(key);
    if (entry) {
      if (this.clock() < entry.refreshAt) return Promise.resolve(entry.context);
      this.entries.delete(key);
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    // Minting is synchronous; deferring it one microtask lets every caller of this tick join it.
    const minting = Promise.resolve()
      .then(() => this.mint(normalised, key))
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, minting);
    return minting;
  }

  private mint(subject: LeafSubject, key: string): LeafContext {
    const name = subject.kind === 'dns' ? subject.name : subject.address;
    const started = performance.now();
    const now = this.clock();
    let context: LeafContext;
    try {
      const leafKey = this.keys.next();
      const leaf = mintLeaf(this.authority, leafKey, subject, { now: new Date(now), validityMs: this.validityMs });
      const secureContext = tls.createSecureContext({
        key: leafKey.privateKeyPem,
        cert: leaf.certPem + this.chainPem,
        minVersion: 'TLSv1.2',
        // Honoured by createSecureContext (SecureContext.setTicketKeys); see the class comment.
        ticketKeys: this.ticketKeys,
      });
      context = Object.freeze({ secureContext, leaf, mintedAt: now });
    } catch (err) {
      this.logger.warn({ err, name }, 'minting a leaf certificate failed');
      if (isGatewayError(err)) throw err;
      throw new GatewayError('TG_ERR_CA', 'tls-client', `minting a certificate for ${name} failed: ${(err as Error).message}`, { cause: err });
    }
    const refreshAt = Math.max(context.leaf.notAfter.getTime() - this.refreshBeforeMs, now + MIN_ENTRY_LIFE_MS);
    this.entries.set(key, { context, refreshAt });
    const ms = performance.now() - started;
    this.logger.debug({ name, serial: context.leaf.serialHex, duration_ms: ms }, 'minted leaf certificate');
    publish('tollgate:cert:minted', { durationMs: ms, cacheSize: this.entries.size });
    if (this.onMint) {
      try {
        this.onMint(name, ms);
      } catch (err) {
        this.logger.warn({ err }, 'leaf cache onMint callback threw');
      }
    }
    return context;
  }
}
