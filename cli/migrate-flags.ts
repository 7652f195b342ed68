/**
 * The migration knobs `migrate` and `demo` share (mode, switchover, bandwidth, the switchover
 * watchdog), as flags with the engine's own defaults — one place, so the two commands cannot
 * drift apart.
 */
import type { Command } from 'commander';
import {
  DEFAULT_MIGRATE_PARAMS,
  MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS,
  SWITCHOVER_TIMEOUT_FACTOR,
} from '@livemig/agent-source';
import { durationFlag, MODES, modeFlag, positiveIntFlag, rateFlag } from './options.ts';

export function addMigrationKnobs(command: Command): Command {
  return command
    .option('--mode <mode>', `${MODES.join(' | ')} (hybrid: pre-copy rounds, then post-copy)`, modeFlag, 'precopy')
    .option('--postcopy-after <n>', 'hybrid: switch to post-copy after this many pre-copy rounds', positiveIntFlag)
    .option(
      '--downtime-limit <duration>',
      'switch over once the rest fits in this downtime (ms unless a unit is given)',
      durationFlag,
      DEFAULT_MIGRATE_PARAMS.downtimeLimitMs,
    )
    .option(
      '--max-rounds <n>',
      'switch over after this many pre-copy rounds at the latest',
      positiveIntFlag,
      DEFAULT_MIGRATE_PARAMS.maxRounds,
    )
    .option('--max-bandwidth <rate>', 'cap the data plane, e.g. 1gbit, 100mbit, 125MB/s (default: unlimited)', rateFlag)
    .option(
      '--switchover-timeout <duration>',
      'resume the VM on the source and fail (ERR_SWITCHOVER_TIMEOUT) when the destination has not said Ready ' +
        `this long after the pause (default: max(${SWITCHOVER_TIMEOUT_FACTOR} × downtime-limit, ` +
        `${MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS / 1000}s))`,
      durationFlag,
    );
}
