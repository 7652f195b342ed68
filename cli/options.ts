/** Option parsers shared by the CLI commands: each turns a flag's text into a checked value. */
import { InvalidArgumentError } from 'commander';
import type { MigrateParams } from '@livemig/shared/control';
import {
  isKnownCapability,
  KNOWN_CAPABILITIES,
  MIGRATION_MODES,
  type Capability,
  type MigrationMode,
} from '@livemig/shared/protocol';
import { isMigrationError, parseDuration, parseRate } from '@livemig/shared';
import { LOG_LEVELS } from '@livemig/shared';

/** Wrap a parser so commander reports its MigrationError as a usage error for that flag. */
export function flag<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError(isMigrationError(error) ? error.message : String(error));
    }
  };
}

export const durationFlag = flag((text) => {
  const ms = parseDuration(text);
  if (!(ms > 0)) throw new InvalidArgumentError(`duration must be > 0, got "${text}"`);
  return ms;
});

export const rateFlag = flag((text) => {
  const bps = parseRate(text);
  if (!(bps > 0)) throw new InvalidArgumentError(`rate must be > 0, got "${text}"`);
  return bps;
});

export const positiveIntFlag = flag((text) => {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new InvalidArgumentError(`expected a whole number ≥ 1, got "${text}"`);
  return value;
});

export const logLevelFlag = flag((text) => {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new InvalidArgumentError(`log level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return text as (typeof LOG_LEVELS)[number];
});

/** The migration modes, from the one list of them (the protocol's). */
export const MODES = MIGRATION_MODES;
export type ModeName = MigrationMode;

export const modeFlag = flag((text) => {
  if (!(MODES as readonly string[]).includes(text)) {
    throw new InvalidArgumentError(`mode must be one of ${MODES.join(', ')}`);
  }
  return text as ModeName;
});

/** A comma-separated list of known capabilities ("" = none). */
export const capabilitiesFlag = flag((text) => {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = names.filter((name) => !isKnownCapability(name));
  if (unknown.length) {
    throw new InvalidArgumentError(
      `unknown capability ${unknown.join(', ')}: known are ${Object.keys(KNOWN_CAPABILITIES).join(', ')}`,
    );
  }
  return names as Capability[];
});

/** The migration knobs `migrate` and `demo` share, as flags. */
export interface MigrateFlags {
  downtimeLimit: number;
  maxRounds: number;
  maxBandwidth?: number;
  postcopyAfter?: number;
  recoveryTimeout?: number;
  switchoverTimeout?: number;
}

/** The control API's migrate params from those flags. */
export function migrateParams(flags: MigrateFlags): MigrateParams {
  return {
    downtimeLimitMs: flags.downtimeLimit,
    maxRounds: flags.maxRounds,
    maxBandwidthBps: flags.maxBandwidth ?? null,
    postcopyAfterRounds: flags.postcopyAfter ?? null,
    ...(flags.recoveryTimeout === undefined ? {} : { recoveryTimeoutMs: flags.recoveryTimeout }),
    ...(flags.switchoverTimeout === undefined ? {} : { switchoverTimeoutMs: flags.switchoverTimeout }),
  };
}
