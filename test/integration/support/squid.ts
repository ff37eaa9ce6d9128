import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from './pki';
import { freePort } from './redis-server';
import { run } from './run';

/** A real Squid (Debian's package) on a loopback port, as a parent proxy for tests. */
export interface Squid {
  readonly port: number;
  readonly url: string;
  /** Squid's own access log so far: one line per request it handled. */
  accessLog(): string;
  stop(): Promise<void>;
}

export interface SquidOptions {
  /** Names Squid resolves to 127.0.0.1 (its hosts_file): name resolution happens at the parent. */
  readonly hosts: readonly string[];
  /** Destination names Squid refuses (403, an `http_access deny` on dstdomain). */
  readonly deny?: readonly string[];
  /** Require Basic proxy authentication with this user and password (basic_ncsa_auth). */
  readonly auth?: { readonly user: string; readonly password: string };
}

const SQUID = ['/usr/sbin/squid', '/usr/local/sbin/squid'].find((p) => existsSync(p)) ?? 'squid';
const NCSA_AUTH = ['/usr/lib/squid/basic_ncsa_auth', '/usr/lib64/squid/basic_ncsa_auth'].find((p) => existsSync(p)) ?? '/usr/lib/squid/basic_ncsa_auth';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/**
 * Starts Squid in the foreground (-N) with a generated configuration in a temp dir: loopback
 * only, no caching, `http_access allow localhost` (after the test's deny list and, with `auth`,
 * only for authenticated clients). Run as root, Squid drops to its own user, so the dir is
 * world-writable.
 */
export async function startSquid(options: SquidOptions): Promise<Squid> {
  const port = await freePort();
  const dir = tempDir('squid');
  chmodSync(dir, 0o777);
  writeFileSync(path.join(dir, 'hosts'), options.hosts.map((h) => `127.0.0.1 ${h}\n`).join(''));
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${dir}/squid.pid`,
    `cache_log ${dir}/cache.log`,
    `access_log stdio:${dir}/access.log`,
    `coredump_dir ${dir}`,
    `hosts_file ${dir}/hosts`,
    'cache deny all',
    'cache_mem 0 MB',
    'pinger_enable off',
    'shutdown_lifetime 0 seconds',
    'forwarded_for delete',
  ];
  if (options.deny && options.deny.length > 0) lines.push(`acl refused dstdomain ${options.deny.join(' ')}`, 'http_access deny refused');
  if (options.auth) {
    // An apr1 (MD5) hash, as htpasswd writes it; basic_ncsa_auth reads it.
    const hashed = await run('openssl', ['passwd', '-apr1', options.auth.password]);
    writeFileSync(path.join(dir, 'htpasswd'), `${options.auth.user}:${hashed.stdout.toString().trim()}\n`);
    chmodSync(path.join(dir, 'htpasswd'), 0o644);
    lines.push(`auth_param basic program ${NCSA_AUTH} ${dir}/htpasswd`, 'auth_param basic realm parent', 'acl authed proxy_auth REQUIRED', 'http_access allow localhost authed');
  } else lines.push('http_access allow localhost');
  lines.push('http_access deny all');
  writeFileSync(path.join(dir, 'squid.conf'), `${lines.join('\n')}\n`);

  const child: ChildProcess = spawn(SQUID, ['-N', '-f', path.join(dir, 'squid.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', (err: NodeJS.ErrnoException) => resolve(err)));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (await canConnect(port)) break;
    const failed = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
    if (failed) throw (failed as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('squid is not installed; run ./scripts/install-test-deps (Debian package squid)') : failed;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      const log = existsSync(path.join(dir, 'cache.log')) ? readFileSync(path.join(dir, 'cache.log'), 'utf8') : '';
      throw new Error(`squid did not start on port ${port}: ${stderr}${log.slice(-2000)}`);
    }
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accessLog: () => (existsSync(path.join(dir, 'access.log')) ? readFileSync(path.join(dir, 'access.log'), 'utf8') : ''),
    stop,
  };
}
