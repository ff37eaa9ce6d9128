import pino from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * The operational log: pino JSON on stdout (the audit trail has its own sink). Header values
 * that carry credentials are redacted here as a second line of defence; code must still never
 * pass them to the logger in the first place.
 */
export function createLogger(level: LogLevel = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'tollgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'headers.authorization',
          'headers.cookie',
          'headers["set-cookie"]',
          'headers["proxy-authorization"]',
          '*.headers.authorization',
          '*.headers.cookie',
          '*.headers["set-cookie"]',
          '*.headers["proxy-authorization"]',
        ],
        censor: '[REDACTED]',
      },
    },
    destination ?? stdoutDestination(),
  );
}

/**
 * JSON lines for machines; on a terminal, pino-pretty for people. Pretty output is synchronous
 * and slower, which only matters under load, and nobody load-tests into a terminal.
 */
function stdoutDestination(): pino.DestinationStream {
  if (process.stdout.isTTY && process.env.TOLLGATE_LOG_FORMAT !== 'json') {
    // Loaded only for a terminal: a gateway logging JSON never needs it (about 10 MB of RSS).
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,svc', singleLine: true, sync: true });
  }
  return pino.destination({ fd: 1, sync: false });
}

/** A logger that discards everything, for unit tests and tools that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
