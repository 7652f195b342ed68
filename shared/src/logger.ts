/**
 * The one pino logger factory. Logs are JSON on stderr (stdout is kept for reports), or
 * pretty-printed when stderr is a terminal. One root logger per process; migrations and
 * connections take children (`logger.child({ migrationId, role })`).
 */
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger, LevelWithSilent } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LoggerOptions {
  /** Process or component name stamped on every line. */
  name: string;
  /** @default 'info' */
  level?: LevelWithSilent;
  /** Pretty-print for people. @default process.stderr.isTTY */
  pretty?: boolean;
}

/** Create the root logger of a process. */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info';
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  if (pretty) {
    return pino({
      name: options.name,
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ name: options.name, level }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that writes nothing (tests and library use without a host process). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
