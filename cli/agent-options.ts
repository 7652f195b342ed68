/**
 * What the two daemon commands (`livemig source`, `livemig dest`) share: the log-level flag, and
 * the warning when a port is reachable beyond this machine (there is no authentication yet).
 */
import type { Command } from 'commander';
import { isLoopback, type HostPort, type LevelWithSilent, type Logger } from '@livemig/shared';
import { logLevelFlag } from './options.ts';

export interface LogLevelFlags {
  logLevel: LevelWithSilent;
}

/** Add --log-level (default info). */
export function addLogLevelOption(command: Command): Command {
  return command.option(
    '--log-level <level>',
    'fatal | error | warn | info | debug | trace | silent',
    logLevelFlag,
    'info',
  );
}

/** Warn for every address that is not loopback: the agent has no authentication yet. */
export function warnIfExposed(logger: Logger, addresses: Record<string, HostPort>): void {
  for (const [what, address] of Object.entries(addresses)) {
    if (!isLoopback(address.host)) {
      logger.warn({ [what]: address }, `${what} port is reachable beyond this machine and has no authentication`);
    }
  }
}
