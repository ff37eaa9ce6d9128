/**
 * SIGUSR1 is what operators (and logrotate snippets) send for log rotation, but by default it
 * makes Node start its inspector on 127.0.0.1:9229: anyone on the host who can connect could
 * then run code in the process that holds the CA key. A JavaScript listener replaces Node's own
 * SIGUSR1 handler (libuv installs its handler over it with sigaction), so once this module has
 * run the signal only ever means "reopen the audit file". This module is the first thing
 * main.ts loads; the launchers (bin/tollgate, the Dockerfile, the systemd unit) also start node
 * with `--inspect-port=0.0.0.1:9229`, an address no host can bind, for the few milliseconds
 * before it runs. Node 20 has no `--disable-sigusr1` (Node 22.14 does).
 *
 * A signal that arrives before the gateway is running is remembered and delivered once it is.
 */

let pending = false;
let handler: (() => void) | null = null;

process.on('SIGUSR1', () => {
  if (handler) handler();
  else pending = true;
});

/** Sets what SIGUSR1 does from now on (replacing any earlier handler). */
export function onRotationSignal(run: () => void): void {
  handler = run;
  if (pending) {
    pending = false;
    run();
  }
}
