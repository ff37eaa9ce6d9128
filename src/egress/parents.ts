import { readFileSync } from 'node:fs';
import type { OnReadOpts, Socket } from 'node:net';
import { publish } from '../observability/events';
import { GatewayError } from '../errors/gateway-error';
import { hostAuthorityText } from '../protocol/host';
import type { Target } from '../protocol/target';
import { ConfigError } from '../sources/config-error';

/**
 * Parent proxies (`upstream.parents`): the named HTTP proxies egress may leave through. What a
 * parent is, how its credentials are read, and the CONNECT exchange with it. The credentials
 * live only in `authorization` and are never logged, put in an error or shown by the CLI.
 */

/** `upstream.parents.NAME` as the configuration schema gives it. */
export interface ParentDefinition {
  readonly url: { readonly tls: boolean; readonly host: string; readonly port: number; readonly text: string };
  readonly credentialsFile: string | null;
  readonly credentialsEnv: string | null;
}

export interface ParentProxy {
  readonly name: string;
  /** Host name or address of the parent, as configured (resolved by the gateway). */
  readonly host: string;
  readonly port: number;
  /** https:// parent: TLS to the parent, verified like an origin. */
  readonly tls: boolean;
  /** `http://host:port`, for messages. */
  readonly url: string;
  /** `Basic ...` for Proxy-Authorization, or null. A secret: never logged. */
  readonly authorization: string | null;
}

/** How long a parent that could not be reached is tried only after the others in its list. */
export const PARENT_DOWN_MS = 30_000;

/** The largest CONNECT response head read from a parent. */
const MAX_CONNECT_HEAD_BYTES = 16 * 1024;

function credentialsOf(name: string, definition: ParentDefinition, configFile: string, env: NodeJS.ProcessEnv): string | null {
  const key = (k: string) => `upstream.parents.${name}.${k}`;
  let text: string;
  if (definition.credentialsFile !== null) {
    try {
      text = readFileSync(definition.credentialsFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new ConfigError([{ file: configFile, line: null, path: key('credentials_file'), message: `cannot read ${definition.credentialsFile} (${code}); it must hold user:password` }]);
    }
  } else if (definition.credentialsEnv !== null) {
    const value = env[definition.credentialsEnv];
    if (value === undefined || value === '') {
      throw new ConfigError([{ file: configFile, line: null, path: key('credentials_env'), message: `the environment variable ${definition.credentialsEnv} is not set; it must hold user:password` }]);
    }
    text = value;
  } else return null;
  // One line; a trailing newline (as editors write files) is not part of the password.
  const line = text.replace(/\r?\n$/, '');
  const where = definition.credentialsFile !== null ? key('credentials_file') : key('credentials_env');
  if (!/^[^:\r\n]+:[^\r\n]*$/.test(line)) {
    throw new ConfigError([{ file: configFile, line: null, path: where, message: 'expected one line user:password (the value is not shown)' }]);
  }
  return `Basic ${Buffer.from(line, 'utf8').toString('base64')}`;
}

/** Reads every parent's credentials; throws ConfigError naming the key when one cannot be read. */
export function loadParents(definitions: Readonly<Record<string, ParentDefinition>>, configFile: string, env: NodeJS.ProcessEnv = process.env): ReadonlyMap<string, ParentProxy> {
  const parents = new Map<string, ParentProxy>();
  for (const [name, definition] of Object.entries(definitions)) {
    parents.set(name, {
      name,
      host: definition.url.host,
      port: definition.url.port,
      tls: definition.url.tls,
      url: definition.url.text,
      authorization: credentialsOf(name, definition, configFile, env),
    });
  }
  return parents;
}

/** `parent proxy corp (http://10.0.0.5:3128)`: how messages name a parent. */
export function parentText(parent: ParentProxy): string {
  return `parent proxy ${parent.name} (${parent.url})`;
}

/** What a parent answered to a request, as a message names it: `407 Proxy Authentication Required (ERR_CACHE_ACCESS_DENIED 0)`. */
export function parentAnswerText(status: number, statusText: string, headers: Readonly<Record<string, string | readonly string[] | undefined>>): string {
  const squid = headers['x-squid-error'];
  const proxyStatus = headers['proxy-status'];
  const detail = [squid, proxyStatus].flat().filter((v): v is string => typeof v === 'string' && v !== '');
  return `${status}${statusText ? ` ${statusText}` : ''}${detail.length > 0 ? ` (${detail.join('; ').slice(0, 200)})` : ''}`;
}

/**
 * Whether a response to a plain HTTP request sent through a parent is the parent's own refusal
 * rather than the origin's answer: a 407 always is (the client never asked the gateway to
 * authenticate with the parent); other statuses only when the parent marks them as its own,
 * with Squid's X-Squid-Error or an RFC 9209 Proxy-Status naming an error.
 */
export function isParentRefusal(status: number, headers: Readonly<Record<string, string | readonly string[] | undefined>>): boolean {
  if (status === 407) return true;
  if (status < 400) return false;
  if (headers['x-squid-error'] !== undefined) return true;
  const proxyStatus = [headers['proxy-status']].flat().join(',');
  return /;\s*error=/i.test(proxyStatus);
}

/**
 * Hands what a socket reads to a caller's `onread` callback (a splice's reads, relay/origin-reads.ts)
 * for sockets that could not be created with it: a tunnel through a parent is read by its
 * CONNECT exchange or TLS first. A callback returning false pauses the socket, as onread does.
 */
export function feedOnread(socket: Socket, onread: OnReadOpts): void {
  socket.on('data', (chunk: Buffer) => {
    if (!onread.callback(chunk.length, chunk)) socket.pause();
  });
}

/** One attempt through a parent, for metrics: connected, refused (it answered no), unreachable. */
export function reportParent(parent: string, outcome: 'connected' | 'refused' | 'unreachable'): void {
  publish('tollgate:egress:parent', { parent, outcome });
}

/** The error of a parent that answered with a refusal. */
export function parentRefused(parent: ParentProxy, answer: string, what: string): GatewayError {
  return new GatewayError('TG_ERR_PARENT_REFUSED', 'connect', `${parentText(parent)} answered ${answer} to ${what}`);
}

/** The error of a parent that could not be reached or did not answer in time. */
export function parentUnreachable(parent: ParentProxy, why: string): GatewayError {
  return new GatewayError('TG_ERR_PARENT_UNREACHABLE', 'connect', `${parentText(parent)} ${why}`);
}

function headerMap(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * Where the parent's answer to CONNECT is read from (the socket's 'data' events by default).
 */
export interface AnswerTap {
  start(onChunk: (chunk: Buffer) => void): void;
  /** Stops tapping; `rest` (bytes after the answer's head) belongs to the tunnel. */
  stop(rest: Buffer): void;
}

export function dataTap(socket: Socket): AnswerTap {
  let listener: ((chunk: Buffer) => void) | null = null;
  return {
    start(onChunk) {
      listener = onChunk;
      socket.on('data', onChunk);
    },
    stop(rest) {
      if (listener) socket.off('data', listener);
      // Nobody reads the tunnel yet: whoever takes the socket resumes it.
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
    },
  };
}

/**
 * Asks a connected parent to open a tunnel to `target` (CONNECT, RFC 9110 section 9.3.6) and
 * waits for its answer: resolves once it answered 2xx, with the socket then carrying the tunnel;
 * rejects with TG_ERR_PARENT_REFUSED naming its answer otherwise (a 407 included: the client
 * never sees the parent's authentication challenge). The caller owns the deadline.
 */
export function connectThrough(socket: Socket, parent: ParentProxy, target: Target, tap: AnswerTap = dataTap(socket)): Promise<void> {
  const authority = `${hostAuthorityText(target.host)}:${target.port}`;
  const what = `CONNECT ${authority}`;
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let done = false;
    const finish = (err: GatewayError | null, rest: Buffer = Buffer.alloc(0)): void => {
      if (done) return;
      done = true;
      socket.off('error', onError);
      socket.off('end', onEnd);
      tap.stop(err ? Buffer.alloc(0) : rest);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve();
    };
    const onChunk = (chunk: Buffer): void => {
      if (done) return;
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_CONNECT_HEAD_BYTES) finish(parentRefused(parent, `a response head over ${MAX_CONNECT_HEAD_BYTES} bytes`, what));
        return;
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = /^HTTP\/1\.[01] ([0-9]{3})(?: (.*))?$/.exec(lines[0] ?? '');
      if (!status) {
        finish(parentRefused(parent, `something that is not HTTP ("${(lines[0] ?? '').slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}")`, what));
        return;
      }
      const code = Number(status[1]);
      if (code >= 200 && code < 300) finish(null, head.subarray(end + 4));
      else finish(parentRefused(parent, parentAnswerText(code, status[2] ?? '', headerMap(lines.slice(1))), what));
    };
    const onError = (err: NodeJS.ErrnoException): void => finish(parentUnreachable(parent, `failed during ${what}: ${err.code ?? err.message}`));
    const onEnd = (): void => finish(parentUnreachable(parent, `closed the connection without answering ${what}`));
    tap.start(onChunk);
    socket.once('error', onError);
    socket.once('end', onEnd);
    const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
    if (parent.authorization) lines.push(`Proxy-Authorization: ${parent.authorization}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

/**
 * Which parents of a route to try, in order: those not seen down recently first, in the route's
 * order, then the ones seen down (a parent back up is found again without waiting).
 */
export class ParentHealth {
  private readonly downUntil = new Map<string, number>();

  constructor(private readonly downMs = PARENT_DOWN_MS) {}

  order(names: readonly string[], now = Date.now()): string[] {
    const up = names.filter((n) => (this.downUntil.get(n) ?? 0) <= now);
    return [...up, ...names.filter((n) => !up.includes(n))];
  }

  markDown(name: string, now = Date.now()): void {
    this.downUntil.set(name, now + this.downMs);
  }

  markUp(name: string): void {
    this.downUntil.delete(name);
  }
}
