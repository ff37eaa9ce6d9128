import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Gateway } from '../gateway';
import { bracketedAddress } from '../protocol/address-text';

function url(address: AddressInfo): string {
  // A wildcard bind is reachable on loopback too, which is what a person at this machine uses.
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '[::1]' : bracketedAddress(address.address);
  return `http://${host}:${address.port}`;
}

/** The lines `tollgate` prints once it is listening: where, and one command to try. */
export function startBanner(gateway: Gateway, cwd = process.cwd()): string[] {
  const lines: string[] = [];
  const explicit = gateway.address('explicit');
  const admin = gateway.address('admin');
  if (explicit) lines.push(`explicit proxy: ${url(explicit)}`);
  if (admin) lines.push(`admin: ${url(admin)}/ (status, /metrics, /install for the CA, /proxy.pac)`);
  if (explicit) {
    const ca = path.relative(cwd, gateway.config.ca.cert) || gateway.config.ca.cert;
    lines.push(`ready: try  curl --cacert ${ca} -x ${url(explicit)} https://example.com/`);
  } else {
    lines.push('ready (no explicit listener: set listen.explicit to proxy HTTP and CONNECT)');
  }
  return lines;
}
