import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ORIGIN_NAME, SPLICE_HOST, type OriginPorts, type Subject, freePort, startJsonChild, stopChild, waitForPort } from './subjects';

/**
 * Peer proxies in the same run, each configured to verify the origin against the bench CA as
 * tollgate does. A peer that is not installed is skipped with a note, never faked. Install:
 *   apt-get install -y squid-openssl mitmproxy
 *   npm install --prefix bench/.peers --save-exact http-mitm-proxy@1.1.0
 */
export interface PeerOptions {
  readonly workDir: string;
  readonly repoDir: string;
  readonly distDir: string;
  readonly originCaFile: string;
  readonly ports: OriginPorts;
  readonly names: readonly string[];
  readonly log: (line: string) => void;
}

function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const file = path.join(dir, command);
    if (existsSync(file)) return file;
  }
  return null;
}

function readWhenPresent(file: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (existsSync(file)) resolve(readFileSync(file, 'utf8'));
      else if (Date.now() > deadline) reject(new Error(`${file} did not appear`));
      else setTimeout(poll, 100);
    };
    poll();
  });
}

/** A CA for a peer that mints from a CA we give it (openssl, so no peer shares tollgate's code). */
function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}-ca.pem`);
  const key = path.join(dir, `${name}-ca.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name} bench CA`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

async function startSquid(options: PeerOptions): Promise<Subject> {
  const squid = which('squid');
  const certgen = ['/usr/lib/squid/security_file_certgen', '/usr/lib64/squid/security_file_certgen'].find((f) => existsSync(f));
  if (!squid || !certgen) throw new Error('not installed (apt-get install -y squid-openssl)');
  const dir = path.join(options.workDir, 'squid');
  mkdirSync(dir, { recursive: true });
  const ca = makeCa(dir, 'squid');
  const caBundle = path.join(dir, 'squid-ca-bundle.pem');
  writeFileSync(caBundle, readFileSync(ca.cert, 'utf8') + readFileSync(ca.key, 'utf8'));
  const originCa = path.join(dir, 'origin-ca.pem');
  writeFileSync(originCa, readFileSync(options.originCaFile));
  writeFileSync(path.join(dir, 'hosts'), [ORIGIN_NAME, ...options.names].map((n) => `127.0.0.1 ${n}\n`).join(''));
  execFileSync(certgen, ['-c', '-s', path.join(dir, 'ssl_db'), '-M', '16MB'], { stdio: 'ignore' });
  const port = await freePort();
  const { ports } = options;
  const config = [
    `http_port 127.0.0.1:${port} ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=${caBundle}`,
    `sslcrtd_program ${certgen} -s ${path.join(dir, 'ssl_db')} -M 16MB`,
    'sslcrtd_children 8 startup=2 idle=1',
    'acl step1 at_step SslBump1',
    `acl splice_port port ${ports.spliceTls}`,
    'ssl_bump peek step1',
    'ssl_bump splice splice_port',
    'ssl_bump bump all',
    `tls_outgoing_options cafile=${originCa}`,
    `hosts_file ${path.join(dir, 'hosts')}`,
    'http_access allow all',
    // A memory-only cache (no cache_dir), as tollgate's: hits in (f); /1k is no-store, so the
    // other scenarios measure forwarding alike.
    'cache_mem 64 MB',
    'maximum_object_size_in_memory 1 MB',
    `access_log stdio:${path.join(dir, 'access.log')}`,
    `cache_log ${path.join(dir, 'cache.log')}`,
    `pid_filename ${path.join(dir, 'squid.pid')}`,
    `coredump_dir ${dir}`,
    'cache_effective_user proxy',
    'shutdown_lifetime 1 seconds',
    'workers 1',
    'dns_v4_first on',
    '',
  ].join('\n');
  const configFile = path.join(dir, 'squid.conf');
  writeFileSync(configFile, config);
  // Squid drops root for `proxy`: its files must be reachable by that user.
  chmodSync(options.workDir, 0o755);
  const owner = execFileSync('id', ['-u', 'proxy']).toString().trim();
  const group = execFileSync('id', ['-g', 'proxy']).toString().trim();
  execFileSync('chown', ['-R', `${owner}:${group}`, dir]);
  const child = spawn(squid, ['-N', '-f', configFile], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitForPort(port, child, 30_000);
  return {
    name: 'squid',
    proxy: { host: '127.0.0.1', port },
    pid: child.pid!,
    interceptCa: [readFileSync(ca.cert, 'utf8')],
    can: { splice: true, inspect: true, plainHttp: true, manyNames: true, cache: true },
    stop: () => stopChild(child, 5000),
  };
}

async function startMitmproxy(options: PeerOptions): Promise<Subject> {
  const mitmdump = which('mitmdump');
  if (!mitmdump) throw new Error('not installed (apt-get install -y mitmproxy)');
  const dir = path.join(options.workDir, 'mitmproxy');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const args = [
    '--listen-host',
    '127.0.0.1',
    '-p',
    String(port),
    '-q',
    '--set',
    `confdir=${dir}`,
    '--set',
    `ssl_verify_upstream_trusted_ca=${options.originCaFile}`,
    // Streams bodies over 1 MB instead of buffering them whole (tollgate always streams).
    '--set',
    'stream_large_bodies=1m',
    '--ignore-hosts',
    `^${SPLICE_HOST.replace(/\./g, '\\.')}$`,
  ];
  const child: ChildProcess = spawn(mitmdump, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitForPort(port, child, 30_000);
  const caPem = await readWhenPresent(path.join(dir, 'mitmproxy-ca-cert.pem'));
  return {
    name: 'mitmproxy',
    proxy: { host: '127.0.0.1', port },
    pid: child.pid!,
    interceptCa: [caPem],
    // It resolves names with the system resolver: the bench's *.bench.test names do not exist there.
    can: { splice: true, inspect: true, plainHttp: true, manyNames: false, cache: false },
    stop: () => stopChild(child, 5000),
  };
}

async function startHttpMitmProxy(options: PeerOptions): Promise<Subject> {
  const peersDir = path.join(options.repoDir, 'bench', '.peers');
  if (!existsSync(path.join(peersDir, 'node_modules', 'http-mitm-proxy'))) {
    throw new Error('not installed (npm install --prefix bench/.peers --save-exact http-mitm-proxy@1.1.0)');
  }
  const dir = path.join(options.workDir, 'http-mitm-proxy');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const { child } = await startJsonChild<{ port: number }>(path.join(options.distDir, 'bench/children/http-mitm-proxy.js'), {
    BENCH_PEERS_DIR: peersDir,
    BENCH_PORT: String(port),
    BENCH_ORIGIN_CA: options.originCaFile,
    BENCH_CA_DIR: dir,
  });
  const caPem = await readWhenPresent(path.join(dir, 'certs', 'ca.pem'));
  return {
    name: 'http-mitm-proxy',
    proxy: { host: '127.0.0.1', port },
    pid: child.pid!,
    interceptCa: [caPem],
    can: { splice: false, inspect: true, plainHttp: true, manyNames: false, cache: false },
    stop: () => stopChild(child),
  };
}

export async function startPeers(options: PeerOptions): Promise<{ subjects: Subject[]; notes: string[] }> {
  const subjects: Subject[] = [];
  const notes: string[] = [];
  const starters: [string, (o: PeerOptions) => Promise<Subject>][] = [
    ['squid', startSquid],
    ['mitmproxy', startMitmproxy],
    ['http-mitm-proxy', startHttpMitmProxy],
  ];
  for (const [name, start] of starters) {
    try {
      subjects.push(await start(options));
      notes.push(`${name}: running`);
    } catch (err) {
      notes.push(`${name}: skipped, ${(err as Error).message}`);
    }
  }
  return { subjects, notes };
}
