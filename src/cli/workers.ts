import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { GatewayConfig } from '../config/schema';
import type { Logger } from '../logging/logger';
import { loadGatewayAuthority } from '../config/runtime';
import { onRotationSignal } from './rotation-signal';

/** `workers: auto` is one process per core; a number is taken as given. */
export function workerCount(setting: GatewayConfig['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** A worker that dies this soon after starting is not restarted (it would only die again). */
const MIN_UPTIME_MS = 5_000;

/**
 * The primary of a multi-process gateway (`workers` > 1). It creates the CA before any worker
 * starts, so all workers load the same CA instead of racing to generate their own; then it
 * forks the workers, which share the listeners through node:cluster (the primary accepts and
 * hands connections round-robin). Each worker keeps its own leaf-key pool and certificate cache:
 * a mint costs about a millisecond, less than asking another process for a certificate would,
 * and every worker's leaves chain to the one CA, so clients see consistent certificates. The
 * audit file is opened O_APPEND by every worker and each batch of records is one write(2) of
 * whole lines, so lines from different workers never interleave. Signals are passed on:
 * SIGTERM/SIGINT drain every worker, SIGHUP reloads every worker (and each reopens the audit
 * file), SIGUSR1 makes every worker reopen the audit file (log rotation). The handlers are installed
 * before the CA is created: a SIGTERM during start-up (generating a CA takes a while) must
 * stop the primary cleanly, not kill it with the default action.
 */
export async function runPrimary(config: GatewayConfig, count: number, logger: Logger): Promise<number> {
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (finish = resolve));
  const workers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: draining every worker');
    const alive = workers();
    if (alive.length === 0) {
      logger.flush();
      finish(0);
      return;
    }
    let left = alive.length;
    for (const worker of alive) {
      worker.once('exit', () => {
        if (--left === 0) {
          logger.flush();
          finish(0);
        }
      });
      worker.process.kill('SIGTERM');
    }
  };
  const reload = (): void => {
    for (const worker of workers()) worker.process.kill('SIGHUP');
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('SIGHUP', reload);
  onRotationSignal(() => {
    for (const worker of workers()) worker.process.kill('SIGUSR1');
  });

  try {
    await loadGatewayAuthority(config, logger);
  } catch (err) {
    process.removeListener('SIGTERM', stop);
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGHUP', reload);
    throw err;
  }
  // Stopped while the CA was being created: there is nothing to drain.
  if (stopping) return exited;

  const startedAt = new Map<Worker, number>();
  const fork = (): void => {
    const worker = cluster.fork();
    startedAt.set(worker, Date.now());
  };
  cluster.on('exit', (worker, code, signal) => {
    const uptime = Date.now() - (startedAt.get(worker) ?? 0);
    startedAt.delete(worker);
    if (stopping) return;
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, uptime_ms: uptime }, 'gateway worker exited');
    if (uptime >= MIN_UPTIME_MS) fork();
    else if (Object.keys(cluster.workers ?? {}).length === 0) {
      logger.fatal('every gateway worker failed at start; stopping');
      process.exit(1);
    }
  });
  for (let i = 0; i < count; i++) fork();
  logger.info({ workers: count }, 'gateway workers started');
  return exited;
}
