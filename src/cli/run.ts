import cluster from 'node:cluster';
import { loadConfig } from '../config/load';
import { Gateway } from '../gateway';
import { createLogger } from '../logging/logger';
import { runPrimary, workerCount } from './workers';

/** Runs the gateway until SIGTERM/SIGINT, then drains and exits 0. */
export async function runGateway(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  const logger = createLogger(config.log.level);
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) return runPrimary(config, workers, logger);
  const gateway = await Gateway.start(config, { logger });
  const explicit = gateway.address('explicit');
  if (explicit) {
    const host = explicit.family === 'IPv6' ? `[${explicit.address}]` : explicit.address;
    logger.info(`ready: try  curl -x http://${host}:${explicit.port} https://example.com/`);
  }
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
