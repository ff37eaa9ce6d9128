import { isIP } from 'node:net';
import { z } from 'zod';
import { DURATION_HINT, SIZE_HINT, parseDuration, parseSize } from './units';

/**
 * Building blocks for the configuration and policy schemas. Each one validates a value and
 * says, in its message, what a correct value looks like.
 */

/**
 * Messages for wrong types that zod would word for programmers ("expected array, received
 * number"): a person who wrote `ports: 443` needs to read `write [443]`. Set once for the
 * process, for every schema (configuration, policies, users file); a message a schema gives
 * itself still wins.
 */
z.config({
  customError: (issue) => {
    if (issue.code !== 'invalid_type') return undefined;
    const input = (issue as { input?: unknown }).input;
    if (issue.expected === 'array') {
      if (input === null || input === undefined) return 'expected a list such as [a, b]; leave the key out for none';
      return `expected a list: write [${typeof input === 'string' ? input : JSON.stringify(input)}] for one item, or [a, b] for several`;
    }
    if (issue.expected === 'boolean') return `expected true or false, not ${JSON.stringify(input)}`;
    return undefined;
  },
});

/** A mapping that refuses unknown keys and lists the known ones, which catches typos early. */
export function section<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code === 'unrecognized_keys') return `known keys here: ${known}`;
      if (issue.code === 'invalid_type') return `expected a mapping with keys: ${known}`;
      return undefined;
    },
  });
}

export function size(options: { min?: number; max?: number } = {}) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === null) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not ${SIZE_HINT}` });
      return z.NEVER;
    }
    if (options.min !== undefined && bytes < options.min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${options.min} bytes` });
      return z.NEVER;
    }
    if (options.max !== undefined && bytes > options.max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${options.max} bytes` });
      return z.NEVER;
    }
    return bytes;
  });
}

/**
 * A duration with its unit (`30s`, `500ms`). A bare number is refused, 0 aside: `peek_timeout: 10`
 * reads as ten seconds to a person and as ten milliseconds to a parser that assumes a unit.
 */
export function duration(options: { min?: number; max?: number; maxText?: string } = {}) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bare = typeof value === 'number' ? value : /^\s*\d+(?:\.\d+)?\s*$/.test(value) ? Number(value) : null;
    if (bare !== null && bare !== 0) {
      ctx.addIssue({ code: 'custom', message: `${value} has no unit: write ${bare}s for seconds or ${bare}ms for milliseconds (${DURATION_HINT})` });
      return z.NEVER;
    }
    const ms = parseDuration(value);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not ${DURATION_HINT}` });
      return z.NEVER;
    }
    if (options.min !== undefined && ms < options.min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${options.min}ms` });
      return z.NEVER;
    }
    if (options.max !== undefined && ms > options.max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${options.maxText ?? `${options.max}ms`}` });
      return z.NEVER;
    }
    return ms;
  });
}

export const port = z
  .number({ error: 'expected a port number from 1 to 65535' })
  .int({ error: 'expected a port number from 1 to 65535' })
  .min(1, { error: 'expected a port number from 1 to 65535' })
  .max(65535, { error: 'expected a port number from 1 to 65535' });

export interface ListenAddress {
  readonly host: string;
  /** 0 asks the OS for a free port; the bound address is logged at start. */
  readonly port: number;
}

const LISTEN_HINT = 'expected host:port such as 127.0.0.1:3128 or [::1]:3128 (port 0 picks a free port), or null to disable';

/** `host:port` for a listener; the host must be an address literal so binding never needs DNS. */
export const listenAddress = z.string({ error: LISTEN_HINT }).transform((text, ctx): ListenAddress => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const portNumber = Number(match?.[3]);
  if (!match || host === undefined || isIP(host) === 0 || portNumber > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${text}": ${LISTEN_HINT}` });
    return z.NEVER;
  }
  return { host, port: portNumber };
});

export const cidr = z.string().refine(
  (text) => {
    const [address, prefix, extra] = text.split('/');
    if (extra !== undefined || address === undefined) return false;
    const family = isIP(address);
    if (family === 0) return false;
    if (prefix === undefined) return true;
    return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
  },
  { error: (issue) => `"${String(issue.input)}" is not an address or CIDR block such as 10.0.0.0/8 or fd00::/8` },
);

export const filePath = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' });

const DNS_SERVER_HINT = 'expected a nameserver address such as 10.0.0.53, 10.0.0.53:5353 or [2001:db8::53]:53';

/** A nameserver for the gateway's resolver: an address, optionally with a port (c-ares syntax). */
export const dnsServer = z.string({ error: DNS_SERVER_HINT }).refine(
  (text) => {
    if (isIP(text) !== 0) return true;
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text.trim());
    const host = match?.[1] ?? match?.[2];
    const portNumber = Number(match?.[3]);
    return match !== null && host !== undefined && isIP(host) !== 0 && portNumber >= 1 && portNumber <= 65535;
  },
  { error: (issue) => `"${String(issue.input)}": ${DNS_SERVER_HINT}` },
);
