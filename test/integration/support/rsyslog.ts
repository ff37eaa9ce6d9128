import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from './pki';
import { freePort } from './redis-server';

/**
 * A real rsyslogd (Debian's package) as the collector: imtcp (plain, or TLS through the gtls
 * driver) and imudp on one loopback port, writing each message's RFC 5424 fields as rsyslog
 * parsed them, one line per message: `PRI|VERSION|TIMESTAMP|HOSTNAME|APP-NAME|PROCID|MSGID|MSG`.
 */
export interface Rsyslog {
  readonly port: number;
  /** Messages received so far, as parsed by rsyslog. */
  messages(): ParsedMessage[];
  stop(): Promise<void>;
  /** Starts it again on the same port (a collector restart). */
  start(): Promise<void>;
}

export interface ParsedMessage {
  readonly pri: number;
  readonly version: string;
  readonly timestamp: string;
  readonly hostname: string;
  readonly appName: string;
  readonly procId: string;
  readonly msgId: string;
  readonly msg: string;
}

const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p)) ?? 'rsyslogd';

export interface RsyslogOptions {
  /** TLS on the TCP input: the server's certificate and key (PEM files). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export async function startRsyslog(options: RsyslogOptions = {}): Promise<Rsyslog> {
  const port = await freePort();
  const dir = tempDir('rsyslog');
  const out = path.join(dir, 'out.log');
  const tls = options.tls;
  const conf = [
    `global(workDirectory="${dir}" maxMessageSize="256k"${tls ? ` defaultNetstreamDriverCAFile="${tls.caFile}" defaultNetstreamDriverCertFile="${tls.certFile}" defaultNetstreamDriverKeyFile="${tls.keyFile}"` : ''})`,
    tls ? 'module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")' : 'module(load="imtcp")',
    'module(load="imudp")',
    'template(name="fields" type="string" string="%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\\n")',
    `ruleset(name="audit") { action(type="omfile" file="${out}" template="fields") }`,
    `input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="audit")`,
    `input(type="imudp" port="${port}" address="127.0.0.1" ruleset="audit")`,
  ].join('\n');
  const confFile = path.join(dir, 'rsyslog.conf');
  writeFileSync(confFile, `${conf}\n`);
  let child: ChildProcess | null = null;
  let output = '';

  const start = async (): Promise<void> => {
    const proc = spawn(RSYSLOGD, ['-n', '-f', confFile, '-i', path.join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const spawned = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      proc.once('spawn', () => resolve(null));
      proc.once('error', resolve);
    });
    if (spawned) throw spawned.code === 'ENOENT' ? new Error('rsyslogd is not installed; run ./scripts/install-test-deps (Debian packages rsyslog, rsyslog-gnutls)') : spawned;
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`rsyslogd exited with ${proc.exitCode}: ${output}`);
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    proc.kill('SIGKILL');
    throw new Error(`rsyslogd did not listen on ${port}: ${output}`);
  };

  const stop = (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };

  const messages = (): ParsedMessage[] => {
    if (!existsSync(out)) return [];
    // rsyslog may be writing: a last line without its newline is not complete yet.
    return readFileSync(out, 'utf8')
      .split('\n')
      .slice(0, -1)
      .map((line) => {
        const [pri, version, timestamp, hostname, appName, procId, msgId, ...rest] = line.split('|');
        return { pri: Number(pri), version: version!, timestamp: timestamp!, hostname: hostname!, appName: appName!, procId: procId!, msgId: msgId!, msg: rest.join('|') };
      });
  };

  await start();
  return { port, messages, stop, start };
}
