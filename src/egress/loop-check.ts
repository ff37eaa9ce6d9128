import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';

/** A bound listener: the address it was bound to (possibly a wildcard) and its port. */
export interface ListenerAddress {
  readonly address: string;
  readonly port: number;
}

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * An address as the kernel will dial it: IPv4-mapped IPv6 (`::ffff:127.0.0.1`, also written
 * `::ffff:7f00:1`) is the IPv4 address it carries, and IPv6 has one form whatever its notation.
 * Null when the text is not an address (the destination guard refuses those on its own).
 */
function parseDialled(text: string): Address | null {
  return ipaddr.isValid(text) ? ipaddr.process(text) : null;
}

function sameAddress(a: Address, b: Address): boolean {
  if (a.kind() !== b.kind()) return false;
  // Byte comparison: a zone id (fe80::1%eth0) does not make a different host.
  const x = a.toByteArray();
  const y = b.toByteArray();
  return x.every((byte, i) => byte === y[i]);
}

function isUnspecified(address: Address): boolean {
  return address.range() === 'unspecified';
}

/** The addresses of this host's interfaces, both families. */
function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((info) => info !== undefined)
    .map((info) => info.address);
}

/**
 * Whether dialling `address` reaches this host: loopback (127.0.0.0/8, ::1), an unspecified
 * address (Linux connects 0.0.0.0 and :: to the host itself), or an interface address.
 */
function isLocalAddress(address: Address, interfaces: () => readonly string[] = interfaceAddresses): boolean {
  const range = address.range();
  if (range === 'loopback' || range === 'unspecified') return true;
  for (const text of interfaces()) {
    const local = parseDialled(text);
    if (local && sameAddress(local, address)) return true;
  }
  return false;
}

/**
 * Whether dialling address:port would reach one of `listeners` (a proxy loop). Addresses are
 * compared as addresses, never as text: text let `::ffff:127.0.0.1`, `0:0:0:0:0:0:0:1` or a
 * name mapped to either reach a listener bound to `127.0.0.1` or `::1`. A listener bound to a
 * wildcard (0.0.0.0 or ::) is reached through every local address of either family: `::` is
 * dual-stack, and for 0.0.0.0 the extra IPv6 matches only refuse what could not connect anyway.
 */
export function reachesListener(address: string, port: number, listeners: Iterable<ListenerAddress>, interfaces: () => readonly string[] = interfaceAddresses): boolean {
  const dialled = parseDialled(address);
  if (dialled === null) return false;
  let local: boolean | null = null;
  for (const listener of listeners) {
    if (listener.port !== port) continue;
    // The kernel dials an unspecified destination as the host itself, whichever address the
    // listener is bound to.
    if (isUnspecified(dialled)) return true;
    const bound = parseDialled(listener.address);
    if (bound === null) continue;
    if (isUnspecified(bound)) {
      local ??= isLocalAddress(dialled, interfaces);
      if (local) return true;
      continue;
    }
    if (sameAddress(bound, dialled)) return true;
  }
  return false;
}
