/**
 * Option parsers shared by the CLI commands: each turns a flag's text into a checked value as
 * commander parses the command line, or throws a coded MigrationError. They need not name their
 * flag: usage.ts prefixes it and makes every such error `livemig: ERR_CODE: --flag: …`, exit 2.
 * Parsers of quantities say how to show their defaults in --help with units (defaultDescription).
 */
import type { MigrateParams } from '@livemig/shared/control';
import { encodingParams, type EncodingFlags } from './encoding-flags.ts';
import {
  isKnownCapability,
  KNOWN_CAPABILITIES,
  MIGRATION_MODES,
  STORAGE_MODES,
  type Capability,
  type MigrationMode,
  type StorageMode,
} from '@livemig/shared/protocol';
import { OBJECTIVES, type Objective } from '@livemig/shared/predict';
import {
  formatHostPort,
  LOG_LEVELS,
  MigrationError,
  parseDuration,
  parseHostPort,
  parseRate,
  parseSize,
  type ErrorCode,
} from '@livemig/shared';

/** An option parser: the flag's text → a checked value (throws a coded MigrationError). */
export type FlagParser<T> = (text: string) => T;

/** Types a text parser as an option parser (the text's type is inferred at the call site). */
export function flag<T>(parse: FlagParser<T>): FlagParser<T> {
  return parse;
}

/** How --help shows the default of an option whose parser yields a quantity, by parser. */
const DEFAULT_FORMATS = new WeakMap<FlagParser<unknown>, (value: number) => string>();

/** A parser of a quantity, whose default --help shows with `format` (e.g. 300 → "300 ms"). */
function quantityFlag(parse: FlagParser<number>, format: (value: number) => string): FlagParser<number> {
  DEFAULT_FORMATS.set(parse, format);
  return parse;
}

/** The --help text of a numeric default given to `parse`, with its unit; undefined if none applies. */
export function defaultDescription(parse: FlagParser<unknown> | undefined, value: unknown): string | undefined {
  const format = parse && DEFAULT_FORMATS.get(parse);
  return format && typeof value === 'number' ? format(value) : undefined;
}

/** `value` in the largest of `units` that divides it exactly: 300 → "300 ms", 2^30 → "1 GiB". */
function inUnits(value: number, units: ReadonlyArray<readonly [name: string, factor: number]>): string {
  const [name, factor] = units.find(([, f]) => value >= f && value % f === 0) ?? units[units.length - 1]!;
  return `${value / factor} ${name}`;
}

const DURATION_UNITS = [
  ['s', 1000],
  ['ms', 1],
] as const;
const SIZE_UNITS = [
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
  ['B', 1],
] as const;
const RATE_UNITS = [
  ['gbit', 1e9 / 8],
  ['mbit', 1e6 / 8],
  ['B/s', 1],
] as const;
const asDuration = (ms: number): string => inUnits(ms, DURATION_UNITS);
const asSize = (bytes: number): string => inUnits(bytes, SIZE_UNITS);
const asRate = (bps: number): string => inUnits(bps, RATE_UNITS);

/** A duration in ms; a bare number is ms. 0 allowed. */
export const anyDurationFlag = quantityFlag((text) => parseDuration(text), asDuration);

/** A quantity > 0 read by `parse`, shown by `show`; ERR `code` when it is not > 0. */
function positiveQuantity(
  what: string,
  code: ErrorCode,
  parse: (text: string) => number,
  show: (value: number) => string,
): FlagParser<number> {
  return quantityFlag((text) => {
    const value = parse(text);
    if (!(value > 0)) throw new MigrationError(code, `${what} must be > 0, got "${text}"`);
    return value;
  }, show);
}

/** A duration > 0 in ms. */
export const durationFlag = positiveQuantity('duration', 'ERR_INVALID_DURATION', parseDuration, asDuration);

/** A size > 0 in bytes. */
export const sizeFlag = positiveQuantity('size', 'ERR_INVALID_SIZE', parseSize, asSize);

/** A size that --help shows with units, checked by `parse` (e.g. a VM's memory). */
export function sizeFlagOf(parse: FlagParser<number>): FlagParser<number> {
  return quantityFlag(parse, asSize);
}

/** A rate > 0 in bytes per second. */
export const rateFlag = positiveQuantity('rate', 'ERR_INVALID_RATE', parseRate, asRate);

/**
 * A rate > 0 in bytes per second that must carry its unit (e.g. --dirty-limit 50MB/s): a bare
 * number is bytes/s everywhere else here but MB/s in QEMU's vcpu-dirty-limit, so neither guess
 * is safe.
 */
export const rateWithUnitFlag = positiveQuantity(
  'rate',
  'ERR_INVALID_RATE',
  (text) => {
    if (/^\s*\d+(\.\d+)?\s*$/.test(text)) {
      throw new MigrationError(
        'ERR_INVALID_RATE',
        `"${text}" needs a unit, e.g. ${text.trim()}MB/s (QEMU's vcpu-dirty-limit is in MB/s; a bare number here would be bytes/s)`,
      );
    }
    return parseRate(text);
  },
  asRate,
);

/** The whole number `text` spells (digits, spaces around them), else NaN. */
function wholeNumber(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
}

export const positiveIntFlag = flag((text) => {
  const value = wholeNumber(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `expected a whole number ≥ 1, got "${text}"`);
  }
  return value;
});

/**
 * A duration in whole ms (rounded) from `minMs` to `maxMs`: ERR_INVALID_DURATION when it does not
 * parse, ERR_INVALID_ARGUMENT outside the bounds.
 */
export function durationInRangeFlag(minMs: number, maxMs: number): FlagParser<number> {
  return quantityFlag((text) => {
    const ms = Math.round(parseDuration(text));
    if (!(ms >= minMs && ms <= maxMs)) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `expected a duration from ${asDuration(minMs)} to ${asDuration(maxMs)}, got "${text}"`,
      );
    }
    return ms;
  }, asDuration);
}

/** A whole number from `min` to `max` (ERR_INVALID_ARGUMENT otherwise). */
export function intInRangeFlag(min: number, max: number): FlagParser<number> {
  return (text) => {
    const value = wholeNumber(text);
    if (!(Number.isSafeInteger(value) && value >= min && value <= max)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `expected a whole number from ${min} to ${max}, got "${text}"`);
    }
    return value;
  };
}

/** One of `values` (the flag's choices). */
export function oneOf<T extends string>(values: readonly T[]): FlagParser<T> {
  return (text) => {
    if (!(values as readonly string[]).includes(text)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `expected one of ${values.join(', ')}, got "${text}"`);
    }
    return text as T;
  };
}

export const logLevelFlag = oneOf(LOG_LEVELS);

/** The migration modes, from the one list of them (the protocol's). */
/** The engine's modes, and auto: the prediction model picks one of them (--objective). */
export const MODES: readonly ModeName[] = [...MIGRATION_MODES, 'auto'];
export type ModeName = MigrationMode | 'auto';

export const modeFlag = oneOf(MODES);

/** How a VM's disk migrates, from the one list of them (the protocol's). */
export const STORAGE = STORAGE_MODES;

export const storageFlag = oneOf(STORAGE);

/** What --mode auto optimises. */
export const objectiveFlag = oneOf(OBJECTIVES);

/** HOST:PORT, canonical ("[::1]:7070" for IPv6). */
export const hostPortFlag = flag((text) => formatHostPort(parseHostPort(text)));

/**
 * An agent's control URL: ws://HOST:PORT or wss://HOST:PORT, or HOST:PORT (ws:// then, wss://
 * with --pki), returned as given. Whether the host resolves is the connection's business
 * (ERR_CONNECTION, exit 1: `--wait` rides it out while a container's name is not in DNS yet).
 */
export const controlUrlFlag = flag((text) => {
  let url: URL | undefined;
  try {
    // As ControlClient.connect reads it: no ws:// or wss:// in front means ws://.
    url = new URL(/^wss?:\/\//.test(text) ? text : `ws://${text}`);
  } catch {
    url = undefined;
  }
  const plain =
    url && url.hostname !== '' && ['', '/'].includes(url.pathname) && !url.search && !url.hash && !url.username;
  if (!plain) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `bad control URL "${text}": expected ws://HOST:PORT, wss://HOST:PORT or HOST:PORT, e.g. ws://127.0.0.1:7171`,
    );
  }
  return text;
});

/** A migration's id as an agent gives it (a UUID, `livemig migrate --detach` prints it), lower-cased. */
export const migrationIdFlag = flag((text) => {
  const id = text.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `expected a migration id (a UUID, as migrate prints it), got "${text}"`,
    );
  }
  return id;
});

/** A comma-separated list of known capabilities ("" = none). */
export const capabilitiesFlag = flag((text) => {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = names.filter((name) => !isKnownCapability(name));
  if (unknown.length) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `unknown capability ${unknown.join(', ')}: known are ${Object.keys(KNOWN_CAPABILITIES).join(', ')}`,
    );
  }
  return names as Capability[];
});

/** The migration knobs `migrate` and `demo` share, as flags. */
export interface MigrateFlags extends EncodingFlags {
  downtimeLimit: number;
  maxRounds: number;
  maxBandwidth?: number;
  maxPostcopyBandwidth?: number;
  /** --channels: bulk channels (the agent's default when absent). */
  channels?: number;
  postcopyAfter?: number;
  recoveryTimeout?: number;
  switchoverTimeout?: number;
  /** How a VM's disk migrates (the engine's default, copy, when absent). */
  storage?: StorageMode;
  /** --mode auto: what to optimise, and the downtime ceiling. */
  objective?: Objective;
  maxDowntime?: number;
  /** Throttle the guest so pre-copy converges: QEMU's auto-converge and its knobs (percent), or a dirty-rate cap (bytes/s). */
  autoConverge?: boolean;
  cpuThrottleInitial?: number;
  cpuThrottleIncrement?: number;
  maxCpuThrottle?: number;
  throttleTriggerThreshold?: number;
  dirtyLimit?: number;
}

/** The control API's migrate params from those flags. */
export function migrateParams(flags: MigrateFlags): MigrateParams {
  return {
    downtimeLimitMs: flags.downtimeLimit,
    maxRounds: flags.maxRounds,
    maxBandwidthBps: flags.maxBandwidth ?? null,
    ...(flags.maxPostcopyBandwidth === undefined ? {} : { maxPostcopyBandwidthBps: flags.maxPostcopyBandwidth }),
    postcopyAfterRounds: flags.postcopyAfter ?? null,
    ...(flags.channels === undefined ? {} : { channels: flags.channels }),
    ...(flags.recoveryTimeout === undefined ? {} : { recoveryTimeoutMs: flags.recoveryTimeout }),
    ...(flags.switchoverTimeout === undefined ? {} : { switchoverTimeoutMs: flags.switchoverTimeout }),
    ...(flags.storage === undefined ? {} : { storage: flags.storage }),
    ...(flags.objective === undefined ? {} : { objective: flags.objective }),
    ...(flags.maxDowntime === undefined ? {} : { maxDowntimeMs: flags.maxDowntime }),
    ...(flags.autoConverge ? { autoConverge: true } : {}),
    ...(flags.cpuThrottleInitial === undefined ? {} : { cpuThrottleInitial: flags.cpuThrottleInitial }),
    ...(flags.cpuThrottleIncrement === undefined ? {} : { cpuThrottleIncrement: flags.cpuThrottleIncrement }),
    ...(flags.maxCpuThrottle === undefined ? {} : { maxCpuThrottle: flags.maxCpuThrottle }),
    ...(flags.throttleTriggerThreshold === undefined
      ? {}
      : { throttleTriggerThreshold: flags.throttleTriggerThreshold }),
    ...(flags.dirtyLimit === undefined ? {} : { dirtyLimitBps: flags.dirtyLimit }),
    ...encodingParams(flags),
  };
}
