/**
 * The migration knobs `migrate` and `demo` share (mode, switchover, bandwidth, the switchover
 * watchdog, throttling the guest to converge, how a disk migrates), as flags with the engine's
 * own defaults — one place, so the two commands cannot drift apart. `lab run` takes --storage
 * from here too.
 */
import type { Command } from 'commander';
import { addEncodingOptions } from './encoding-flags.ts';
import { MAX_CHANNELS } from '@livemig/shared/multifd';
import {
  DEFAULT_CHANNELS,
  DEFAULT_MIGRATE_PARAMS,
  MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS,
  SWITCHOVER_TIMEOUT_FACTOR,
} from '@livemig/agent-source';
import type { StorageMode } from '@livemig/shared/protocol';
import { OBJECTIVES } from '@livemig/shared/predict';
import { AUTO_CONVERGE_DEFAULTS } from '@livemig/agent-source';
import {
  durationFlag,
  intInRangeFlag,
  MODES,
  modeFlag,
  objectiveFlag,
  positiveIntFlag,
  rateFlag,
  rateWithUnitFlag,
  STORAGE,
  storageFlag,
} from './options.ts';

/** What each storage mode does, one line each for --help (a Record: a new mode must be described). */
const STORAGE_MODE_HELP: Record<StorageMode, string> = {
  shared: 'both agents open one image on shared storage (the same --disk-dir): no disk bytes sent',
  copy: 'pre-copy beside memory: the allocated blocks, then those written since, round by round',
  mirror: 'as copy, then each guest write also waits for the destination: converges at any rate',
  postcopy: 'the destination resumes without the disk: blocks fetched as read, the rest pushed',
};

/** The storage modes, one line each, for --help. */
export function storageModesHelp(): string {
  const width = Math.max(...STORAGE.map((mode) => mode.length));
  return [
    'Storage modes (--storage; a VM without a disk ignores it):',
    ...STORAGE.map((mode) => `  ${mode.padEnd(width)}  ${STORAGE_MODE_HELP[mode]}`),
  ].join('\n');
}

/** Add --storage, with the engine's default and the modes explained after the options. */
export function addStorageOption(command: Command): Command {
  return command
    .option(
      '--storage <mode>',
      `how a VM's disk migrates: ${STORAGE.join(' | ')} (see below; with any --mode)`,
      storageFlag,
      DEFAULT_MIGRATE_PARAMS.storage,
    )
    .addHelpText('after', `\n${storageModesHelp()}`);
}

export function addMigrationKnobs(command: Command): Command {
  command
    .option(
      '--mode <mode>',
      `${MODES.join(' | ')} (hybrid: pre-copy rounds, then post-copy; auto: the technique the prediction ` +
        'model picks for --objective, decided in round 0 from what it measured, reason in the report)',
      modeFlag,
      'precopy',
    )
    .option(
      '--objective <what>',
      `--mode auto: what to optimise, ${OBJECTIVES.join(' | ')} (default downtime)`,
      objectiveFlag,
    )
    .option(
      '--max-downtime <duration>',
      '--mode auto: only techniques predicted to stay under this downtime compete',
      durationFlag,
    )
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
      '--max-postcopy-bandwidth <rate>',
      "cap post-copy's background push (QEMU's max-postcopy-bandwidth), paced in small batches: below the link's rate " +
        'a fault is not answered behind a queue of pushed pages, at the cost of a longer push (default: --max-bandwidth alone)',
      rateFlag,
    )
    .option(
      '--channels <n>',
      `bulk channels, 1-${MAX_CHANNELS}: above 1, pre-copy pages also travel over that many parallel connections, ` +
        `each with a thread on both ends (QEMU multifd; a destination without it gets one) (default ${DEFAULT_CHANNELS})`,
      intInRangeFlag(1, MAX_CHANNELS),
    )
    .option(
      '--switchover-timeout <duration>',
      'resume the VM on the source and fail (ERR_SWITCHOVER_TIMEOUT) when the destination has not said Ready ' +
        `this long after the pause (default: max(${SWITCHOVER_TIMEOUT_FACTOR} × downtime-limit, ` +
        `${MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS / 1000}s))`,
      durationFlag,
    );
  return addStorageOption(addEncodingOptions(addThrottleOptions(command)));
}

/**
 * --auto-converge with QEMU's knobs (percentages of the vCPU's time taken away; the engine's
 * defaults apply when absent, and it refuses a knob without its technique), and --dirty-limit.
 */
export function addThrottleOptions(command: Command): Command {
  const d = AUTO_CONVERGE_DEFAULTS;
  const percent = intInRangeFlag(1, 99);
  return command
    .option(
      '--auto-converge',
      "QEMU's auto-converge: when 2 pre-copy rounds in a row dirty more than --throttle-trigger-threshold of what " +
        'they sent, throttle the vCPU, more each such round; lifted at the switchover (the report shows the cost)',
    )
    .option(
      '--cpu-throttle-initial <percent>',
      `--auto-converge: the first throttle, % of the vCPU's time taken away, 1-99 (default ${d.initialPercent})`,
      percent,
    )
    .option(
      '--cpu-throttle-increment <percent>',
      `--auto-converge: added each round that still outruns the link, 1-99 (default ${d.incrementPercent})`,
      percent,
    )
    .option(
      '--max-cpu-throttle <percent>',
      `--auto-converge, --dirty-limit: the most the vCPU is throttled, 1-99 (default ${d.maxPercent})`,
      percent,
    )
    .option(
      '--throttle-trigger-threshold <percent>',
      '--auto-converge: a round outruns the link when it dirties more than this % of the bytes it sent, 1-100 ' +
        `(default ${d.triggerThresholdPercent})`,
      intInRangeFlag(1, 100),
    )
    .option(
      '--dirty-limit <rate>',
      "cap the guest's dirty rate (QEMU's dirty-limit), e.g. 20MB/s: throttle the vCPU so the pages it dirties per " +
        'second stay under it, re-derived each round (not with --auto-converge)',
      rateWithUnitFlag,
    );
}
