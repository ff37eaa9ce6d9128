import cluster from 'node:cluster';
import { loadConfig } from '../config/load';
import { Gateway } from '../gateway';
import { createLogger } from '../logging/logger';
import { runPrimary, workerCount } from './workers';
import { startBanner } from './start-banner';

/** Runs the gateway until SIGTERM/SIGINT, then drains and exits 0. */
export async function runGateway(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  const logger = createLogger(config.log.level);
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) return runPrimary(config, workers, logger);
  const gateway = await Gateway.start(config, { logger });
  // With several workers, one banner is enough.
  if (cluster.isPrimary || cluster.worker?.id === 1) for (const line of startBanner(gateway)) logger.info(line);
  return new Promise((resolve) => {
    let signalled = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (signalled) return;
      signalled = true;
      logger.info({ signal }, 'stopping: draining in-flight work');
      gateway.stop().then(
        () => {
          logger.flush();
          // A worker's IPC channel to its primary keeps it alive; closing it lets it exit.
          cluster.worker?.disconnect();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    // A worker is stopped by its primary (SIGTERM); a Ctrl-C reaches the whole process group.
    process.once('SIGINT', cluster.isWorker ? () => undefined : stop);
    process.on('SIGHUP', () => gateway.reload('SIGHUP'));
  });
}
