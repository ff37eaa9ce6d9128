import type { LookupAddress, LookupOneOptions } from 'node:dns';
import net from 'node:net';
import { GatewayError } from '../errors/gateway-error';
import { normaliseHost } from '../protocol/host';
import type { Target } from '../protocol/authority';
import type { AddressGuard } from './address-guard';
import type { ResolvedAddress, Resolver } from './resolve';

export interface Egress {
  readonly resolver: Resolver;
  readonly guard: AddressGuard;
  /**
   * True when address:port is one of the gateway's own listeners (a proxy loop). Takes the
   * address exactly as it will be dialled and compares it as an address (loop-check.ts).
   */
  readonly isOwnListener: (address: string, port: number) => boolean;
  readonly connectTimeoutMs: number;
}

export interface DialedSocket {
  readonly socket: net.Socket;
  readonly remote: ResolvedAddress;
}

/**
 * Why one address may not be dialled on `port` (a loop, or the destination guard), or null.
 * Every outbound path ends here with the address it dials: tunnels through dialTarget or
 * resolveAllowed, pooled HTTP/1, HTTP/2 and the ALPN probe through guardedLookup for names and
 * refusalForLiteral for literals.
 */
export function refusalFor(egress: Egress, address: string, port: number): GatewayError | null {
  if (egress.isOwnListener(address, port)) return new GatewayError('TG_ERR_LOOP', 'resolve', `${address}:${port} is one of this gateway's listeners`);
  const verdict = egress.guard.check(address);
  return verdict.allowed ? null : new GatewayError('TG_ERR_DESTINATION_FORBIDDEN', 'resolve', verdict.reason);
}

/**
 * The check for a target written as an address. Node's net.connect never calls a `lookup`
 * function for an IP literal, so paths that rely on guardedLookup must call this first.
 */
export function refusalForLiteral(egress: Egress, target: Target): GatewayError | null {
  return target.host.kind === 'name' ? null : refusalFor(egress, target.host.address, target.port);
}

/** Resolves a target and keeps only the addresses the destination guard allows. */
export async function resolveAllowed(egress: Egress, target: Target): Promise<readonly ResolvedAddress[]> {
  const addresses = await egress.resolver.resolve(target.host);
  const allowed: ResolvedAddress[] = [];
  let refusal: GatewayError | null = null;
  for (const candidate of addresses) {
    const problem = refusalFor(egress, candidate.address, target.port);
    if (problem === null) allowed.push(candidate);
    else if (refusal === null || problem.code === 'TG_ERR_LOOP') refusal = problem;
  }
  if (allowed.length === 0) throw refusal ?? new GatewayError('TG_ERR_DNS', 'resolve', 'no addresses');
  return allowed;
}

function mapConnectError(err: NodeJS.ErrnoException, where: string): GatewayError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new GatewayError('TG_ERR_UPSTREAM_REFUSED', 'connect', `${where} refused the connection`, { cause: err });
    case 'ETIMEDOUT':
      return new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to ${where} timed out`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `${where} is unreachable (${err.code})`, { cause: err });
    default:
      return new GatewayError('TG_ERR_UPSTREAM_UNREACHABLE', 'connect', `cannot connect to ${where}: ${err.code ?? err.message}`, { cause: err });
  }
}

function connectOnce(remote: ResolvedAddress, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: remote.address, port, family: remote.family, noDelay: true, allowHalfOpen: true });
    const where = `${remote.family === 6 ? `[${remote.address}]` : remote.address}:${port}`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(mapConnectError(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }), where));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(mapConnectError(err, where));
    });
  });
}

/**
 * Resolves, checks and connects: tries each allowed address in order within one overall
 * timeout. The address checked is the address dialled — no second lookup in between.
 */
export async function dialTarget(egress: Egress, target: Target): Promise<DialedSocket> {
  const deadline = Date.now() + egress.connectTimeoutMs;
  const addresses = await resolveAllowed(egress, target);
  let lastError: GatewayError | null = null;
  for (const remote of addresses) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      return { socket: await connectOnce(remote, target.port, remaining), remote };
    } catch (err) {
      lastError = err as GatewayError;
    }
  }
  throw lastError ?? new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', `connecting to port ${target.port} timed out`);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` function for Node's http/https agents and `net.connect`, so pooled upstream
 * connections go through the same resolver, destination guard and loop check as tunnels.
 * Node skips `lookup` for IP literals: callers check those with `refusalForLiteral`.
 * Refusals surface as the connection's error, carrying the GatewayError as its cause.
 */
export function guardedLookup(egress: Egress, port: number) {
  return (hostname: string, options: LookupOneOptions & { all?: boolean }, callback: LookupCallback): void => {
    const host = normaliseHost(hostname);
    if (!host.ok) {
      callback(Object.assign(new Error(host.reason), { code: 'EINVAL' }), []);
      return;
    }
    resolveAllowed(egress, { host: host.host, port }).then(
      (addresses) => {
        if (options.all) callback(null, addresses.map((a) => ({ address: a.address, family: a.family })));
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: GatewayError) => callback(Object.assign(new Error(err.message), { code: 'TG_GUARD', cause: err }), []),
    );
  };
}
