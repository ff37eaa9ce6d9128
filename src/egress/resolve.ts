import { Resolver as DnsResolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';
import { GatewayError } from '../errors/gateway-error';
import type { Host } from '../protocol/host';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

export interface ResolverOptions {
  /** Static name -> address map consulted before DNS (`upstream.hosts`). */
  readonly hosts?: Readonly<Record<string, string>>;
  readonly maxEntries?: number;
  /** Answers are kept for their TTL, clamped to this range. */
  readonly minTtlMs?: number;
  readonly maxTtlMs?: number;
  /** How long a failed lookup is remembered. */
  readonly negativeTtlMs?: number;
  readonly timeoutMs?: number;
  /** Nameservers to query instead of the system's (tests, split-horizon deployments). */
  readonly servers?: readonly string[];
}

/**
 * One spelling per address, the one the kernel dials: IPv4-mapped IPv6 becomes the IPv4 address
 * it carries, IPv6 is written per RFC 5952. Literals in requests are normalised the same way
 * (protocol/host.ts), so the static map and DNS answers reach policy, the destination guard,
 * the loop check and the audit records in the form a literal would.
 */
function canonicalAddress(text: string): ResolvedAddress {
  const address = ipaddr.process(text);
  if (address.kind() === 'ipv4') return { address: address.toString(), family: 4 };
  return { address: (address as ipaddr.IPv6).toRFC5952String(), family: 6 };
}

type CacheEntry = { readonly addresses: readonly ResolvedAddress[] } | { readonly error: GatewayError };

const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME', 'NXDOMAIN']);

/**
 * The gateway's own resolver: clients behind a proxy never resolve names themselves. It uses
 * Node's `dns.promises` Resolver (c-ares) with `ttl: true` so answers are cached for exactly as
 * long as their records allow — `dns.lookup` (getaddrinfo) hides TTLs and runs on the libuv
 * thread pool, where slow lookups would queue behind file I/O. A and AAAA are asked in
 * parallel; IPv4 answers come first, then IPv6, and callers try them in that order.
 * Concurrent lookups of one name share one query.
 */
export class Resolver {
  private readonly hosts: ReadonlyMap<string, ResolvedAddress>;
  private readonly cache: LRUCache<string, CacheEntry>;
  private readonly inFlight = new Map<string, Promise<readonly ResolvedAddress[]>>();
  private readonly dns: DnsResolver;
  private readonly minTtlMs: number;
  private readonly maxTtlMs: number;
  private readonly negativeTtlMs: number;

  constructor(options: ResolverOptions = {}) {
    const hosts = new Map<string, ResolvedAddress>();
    for (const [name, address] of Object.entries(options.hosts ?? {})) {
      if (isIP(address) === 0 || address.includes('%')) throw new Error(`upstream.hosts: "${address}" for ${name} is not an IP address`);
      hosts.set(name.toLowerCase().replace(/\.$/, ''), canonicalAddress(address));
    }
    this.hosts = hosts;
    this.minTtlMs = options.minTtlMs ?? 1_000;
    this.maxTtlMs = options.maxTtlMs ?? 3_600_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.cache = new LRUCache({ max: options.maxEntries ?? 10_000, ttlAutopurge: false });
    this.dns = new DnsResolver({ timeout: options.timeoutMs ?? 5_000, tries: 2 });
    if (options.servers && options.servers.length > 0) this.dns.setServers([...options.servers]);
  }

  /** Addresses for a host, in the order they should be tried. Throws TG_ERR_DNS. */
  async resolve(host: Host): Promise<readonly ResolvedAddress[]> {
    if (host.kind === 'ipv4') return [{ address: host.address, family: 4 }];
    if (host.kind === 'ipv6') return [{ address: host.address, family: 6 }];
    const name = host.name;
    const pinned = this.hosts.get(name);
    if (pinned) return [pinned];
    const cached = this.cache.get(name);
    if (cached) {
      if ('error' in cached) throw cached.error;
      return cached.addresses;
    }
    const pending = this.inFlight.get(name);
    if (pending) return pending;
    const lookup = this.query(name).finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, lookup);
    return lookup;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  private async query(name: string): Promise<readonly ResolvedAddress[]> {
    const [v4, v6] = await Promise.allSettled([this.dns.resolve4(name, { ttl: true }), this.dns.resolve6(name, { ttl: true })]);
    const addresses: ResolvedAddress[] = [];
    let ttlSeconds = Number.POSITIVE_INFINITY;
    if (v4.status === 'fulfilled') {
      for (const record of v4.value) {
        addresses.push({ address: record.address, family: 4 });
        ttlSeconds = Math.min(ttlSeconds, record.ttl);
      }
    }
    if (v6.status === 'fulfilled') {
      for (const record of v6.value) {
        addresses.push(canonicalAddress(record.address));
        ttlSeconds = Math.min(ttlSeconds, record.ttl);
      }
    }
    if (addresses.length > 0) {
      const ttl = Math.min(this.maxTtlMs, Math.max(this.minTtlMs, ttlSeconds * 1000));
      this.cache.set(name, { addresses }, { ttl });
      return addresses;
    }
    const error = this.failure(name, v4, v6);
    this.cache.set(name, { error }, { ttl: this.negativeTtlMs });
    throw error;
  }

  private failure(name: string, ...results: PromiseSettledResult<unknown>[]): GatewayError {
    const codes = results.map((r) => (r.status === 'rejected' ? String((r.reason as NodeJS.ErrnoException).code ?? 'error') : 'ENODATA'));
    const notFound = codes.every((code) => NO_DATA.has(code));
    const detail = notFound ? 'no such name or no address records' : `lookup failed (${[...new Set(codes)].join(', ')})`;
    return new GatewayError('TG_ERR_DNS', 'resolve', `cannot resolve ${name}: ${detail}`);
  }
}
