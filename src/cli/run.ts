import { loadConfig } from '../config/load';
import { Gateway } from '../gateway';
import { createLogger } from '../logging/logger';

/** Runs the gateway until SIGTERM/SIGINT, then drains and exits 0. */
export async function runGateway(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  const logger = createLogger(config.log.level);
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
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => gateway.reload('SIGHUP'));
  });
}
