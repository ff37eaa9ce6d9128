import type { Logger } from './logger';

/**
 * Runs `work`; if it is still running after `afterMs`, logs `message` once, so a person watching
 * a first start (CA key generation) sees why nothing else has happened yet.
 */
export async function withProgress<T>(logger: Logger, message: string, work: Promise<T>, afterMs = 1000): Promise<T> {
  const started = Date.now();
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    logger.info(`${message}…`);
  }, afterMs);
  try {
    return await work;
  } finally {
    clearTimeout(timer);
    if (shown) logger.info({ duration_ms: Date.now() - started }, `${message}: done`);
  }
}
