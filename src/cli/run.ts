import cluster from 'node:cluster';
import { loadConfig, requireTrafficListener } from '../config/load-config';
import { Gateway } from '../gateway';
import { createLogger } from '../logging/logger';
import { onRotationSignal } from './rotation-signal';
import { runPrimary, workerCount } from './workers';
import { startBanner } from './start-banner';

/**
 * Runs the gateway until SIGTERM/SIGINT, then drains and exits 0. SIGHUP reloads the policy and
 * reopens the audit file; SIGUSR1 only reopens the audit file (log rotation). The signal
 * handlers are installed before the gateway starts: a SIGTERM that arrives while it is still
 * starting (its listeners may already be bound and logged) must drain, not kill the process
 * with the default action.
 */
export async function runGateway(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  requireTrafficListener(config);
  const logger = createLogger(config.log.level);
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) return runPrimary(config, workers, logger);
  let gateway: Gateway | null = null;
  let stopSignal: NodeJS.Signals | null = null;
  let finish: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (finish = resolve));

  const drain = (running: Gateway, signal: NodeJS.Signals): void => {
    logger.info({ signal, grace_ms: config.limits.shutdownGraceMs }, 'stopping: draining in-flight work');
    running.stop().then(
      () => {
        logger.flush();
        // A worker's IPC channel to its primary keeps it alive; closing it lets it exit.
        cluster.worker?.disconnect();
        finish(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        logger.flush();
        finish(1);
      },
    );
  };
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopSignal) return;
    stopSignal = signal;
    if (gateway) drain(gateway, signal);
  };
  const onReload = (): void => {
    if (gateway) {
      gateway.reopenAudit('SIGHUP');
      gateway.reload('SIGHUP');
    } else logger.warn('SIGHUP while starting: the configuration being started is already the newest');
  };
  // While starting, the audit file is being opened now: a rotation before that needs nothing.
  const onRotate = (): void => {
    gateway?.reopenAudit('SIGUSR1');
  };
  // A worker is stopped by its primary (SIGTERM); a Ctrl-C reaches the whole process group.
  const onInterrupt = cluster.isWorker ? (): void => undefined : onStop;
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onInterrupt);
  process.on('SIGHUP', onReload);
  onRotationSignal(onRotate);

  try {
    gateway = await Gateway.start(config, { logger });
  } catch (err) {
    process.removeListener('SIGTERM', onStop);
    process.removeListener('SIGINT', onInterrupt);
    process.removeListener('SIGHUP', onReload);
    throw err;
  }
  // With several workers, one banner is enough.
  if (cluster.isPrimary || cluster.worker?.id === 1) for (const line of startBanner(gateway)) logger.info(line);
  if (stopSignal) drain(gateway, stopSignal);
  return exited;
}
