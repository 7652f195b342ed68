/**
 * The knobs of one migration — mode, downtime limit, rounds, bandwidth cap, when hybrid switches
 * to post-copy, how long post-copy recovery keeps trying, how long the VM may stay paused here
 * waiting for the destination at the switchover, whether and how the guest is throttled to
 * converge — resolved once, with finite defaults, every bad value rejected with
 * ERR_INVALID_ARGUMENT naming it.
 */
import { MigrationError } from '@livemig/shared';
import type { EncodingParams } from './sections/ram/encoding-policy.ts';
import { resolveEncodingParams, type EncodingKnobs } from './encoding-params.ts';
import type { MigrateParams } from '@livemig/shared/control';
import { OBJECTIVES, type Objective } from '@livemig/shared/predict';
import { MAX_CHANNELS } from '@livemig/shared/multifd';
import { MIGRATION_MODES, STORAGE_MODES, type MigrationMode, type StorageMode } from '@livemig/shared/protocol';
import { AUTO_CONVERGE_DEFAULTS, type ThrottleSettings } from './throttle.ts';

export interface ResolvedMigrateParams {
  mode: MigrationMode;
  /** @default 300 */
  downtimeLimitMs: number;
  /** @default 30 */
  maxRounds: number;
  /** Bytes per second; null = unlimited. @default null */
  maxBandwidthBps: number | null;
  /**
   * The post-copy background push's own cap, bytes per second (QEMU's max-postcopy-bandwidth):
   * below the link's rate, the push leaves the bottleneck queue short, so a fault's answer is
   * not queued behind megabytes of pushed pages (postcopy-pusher.ts paces it in small batches).
   * null: the push runs under max-bandwidth alone. @default null
   */
  maxPostcopyBandwidthBps: number | null;
  /** Hybrid: switch to post-copy after this many pre-copy rounds at the latest. @default null (switchover rule only) */
  postcopyAfterRounds: number | null;
  /** Post-copy: how long to keep reconnecting after the link broke before declaring the VM lost. @default 60000 */
  recoveryTimeoutMs: number;
  /**
   * The stop-and-copy watchdog (watchdog.ts): the longest the VM stays paused here, waiting for
   * the destination's Ready, before it resumes here and the migration fails with
   * ERR_SWITCHOVER_TIMEOUT. @default defaultSwitchoverTimeoutMs(downtimeLimitMs): max(10 × downtime limit, 2 s)
   */
  switchoverTimeoutMs: number;
  /** The caller set switchoverTimeoutMs (else it is the default, which a shared disk may extend: context.ts). */
  switchoverTimeoutGiven?: boolean;
  /** How the VM's disk migrates (ignored without a disk). @default 'copy' */
  storage: StorageMode;
  /**
   * `--mode auto`: the objective and downtime ceiling the choice is made for (auto.ts); the
   * migration then starts as hybrid (so post-copy stays possible) until round 0 decides. null:
   * a fixed mode.
   */
  auto: { objective: Objective; maxDowntimeMs: number | null } | null;
  /** Page encodings (issue 17: --xbzrle, --dedup, --compress …). @default DEFAULT_ENCODING_PARAMS */
  encodings?: EncodingParams;
  /**
   * What throttles the guest so pre-copy converges (throttle.ts): auto-converge with QEMU's
   * schedule, or a dirty-rate cap; null: the guest runs at its own speed. @default null
   */
  throttle: ThrottleSettings | null;
  /**
   * Bulk channels (`--channels`, 1..MAX_CHANNELS): above 1, pre-copy rounds deal raw and zero
   * pages to that many parallel connections (multifd.ts), when the destination negotiated
   * `multifd`. @default DEFAULT_CHANNELS
   */
  channels: number;
}

/**
 * Bulk channels by default: what measures best on this machine. S1 (idle 1 GiB random, loopback,
 * plaintext, fresh agents, 3 runs of each N interleaved; `npx tsx bench/multifd-s1.ts 1 2 3`), on
 * its 2 cores shared with other work: at a load average of 8-9, total median N=1 2042 ms, N=2
 * 2444, N=3 3222 (round 0 1889 / 1556 / 2100 ms; CPU of both agents 2480 / 3050 / 3610 ms); at
 * ~10, 6200 / 7592 / 7438 ms. Two channels shorten round 0 where a core is free, but their
 * workers' start-up (an isolate and its modules each side, 0.4-1 s of setup here) costs more than
 * that saves on 1 GiB: one channel.
 */
export const DEFAULT_CHANNELS = 1;

/** The switchover timeout's default is this many downtime limits … */
export const SWITCHOVER_TIMEOUT_FACTOR = 10;
/** … and never less than this (ms): a destination verifying a large VM needs a moment. */
export const MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS = 2000;

/** The default switchover timeout for a downtime limit: max(10 × limit, 2 s). Pure. */
export function defaultSwitchoverTimeoutMs(downtimeLimitMs: number): number {
  return Math.max(SWITCHOVER_TIMEOUT_FACTOR * downtimeLimitMs, MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS);
}

/** The defaults that do not depend on another parameter (switchoverTimeoutMs does: see above). */
export const DEFAULT_MIGRATE_PARAMS: Omit<ResolvedMigrateParams, 'mode' | 'switchoverTimeoutMs' | 'auto'> =
  Object.freeze({
    downtimeLimitMs: 300,
    maxRounds: 30,
    maxBandwidthBps: null,
    maxPostcopyBandwidthBps: null,
    postcopyAfterRounds: null,
    recoveryTimeoutMs: 60_000,
    storage: 'copy',
    throttle: null,
    channels: DEFAULT_CHANNELS,
  });

/** The throttle knobs of MigrateParams (resolved into `throttle`). */
type ThrottleKnobs = Pick<
  MigrateParams,
  | 'autoConverge'
  | 'cpuThrottleInitial'
  | 'cpuThrottleIncrement'
  | 'maxCpuThrottle'
  | 'throttleTriggerThreshold'
  | 'dirtyLimitBps'
>;

/** A whole percentage in min..max, or ERR_INVALID_ARGUMENT naming the knob. */
function percentIn(name: string, value: unknown, min: number, max: number): number {
  if (!(typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max)) {
    throw invalid(`${name} must be a whole percentage in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * auto-converge or dirty-limit, checked: not both (QEMU refuses both too: they pull the same
 * lever), knobs only with the technique they tune, percentages in QEMU's ranges, the first
 * throttle not above the most, and not for a pure post-copy (it has no pre-copy rounds).
 */
function resolveThrottle(mode: MigrationMode, knobs: ThrottleKnobs): ThrottleSettings | null {
  const autoConverge = knobs.autoConverge ?? false;
  if (typeof autoConverge !== 'boolean')
    throw invalid(`auto-converge must be true or false, got ${String(autoConverge)}`);
  const limit = knobs.dirtyLimitBps ?? null;
  if (limit !== null && !(typeof limit === 'number' && Number.isFinite(limit) && limit > 0)) {
    throw invalid(`dirty-limit must be > 0 bytes/s, got ${String(limit)}`);
  }
  if (autoConverge && limit !== null) {
    throw invalid('auto-converge and dirty-limit both throttle the guest: give one or the other');
  }
  const tuning = (['cpuThrottleInitial', 'cpuThrottleIncrement', 'throttleTriggerThreshold'] as const).filter(
    (k) => knobs[k] !== undefined,
  );
  if (!autoConverge && tuning.length) {
    throw invalid(`${tuning.map(kebab).join(', ')} ${tuning.length > 1 ? 'apply' : 'applies'} with auto-converge only`);
  }
  if (!autoConverge && limit === null) {
    if (knobs.maxCpuThrottle !== undefined)
      throw invalid('max-cpu-throttle applies with auto-converge or dirty-limit only');
    return null;
  }
  if (mode === 'postcopy') {
    throw invalid(
      `${autoConverge ? 'auto-converge' : 'dirty-limit'} throttles pre-copy rounds: a pure post-copy has none`,
    );
  }
  const d = AUTO_CONVERGE_DEFAULTS;
  const maxPercent = percentIn('max-cpu-throttle', knobs.maxCpuThrottle ?? d.maxPercent, 1, 99);
  if (limit !== null) return { kind: 'dirty-limit', limitBps: limit, maxPercent };
  const initialPercent = percentIn('cpu-throttle-initial', knobs.cpuThrottleInitial ?? d.initialPercent, 1, 99);
  if (initialPercent > maxPercent) {
    throw invalid(`cpu-throttle-initial (${initialPercent} %) is above max-cpu-throttle (${maxPercent} %)`);
  }
  return {
    kind: 'auto-converge',
    initialPercent,
    incrementPercent: percentIn('cpu-throttle-increment', knobs.cpuThrottleIncrement ?? d.incrementPercent, 1, 99),
    maxPercent,
    triggerThresholdPercent: percentIn(
      'throttle-trigger-threshold',
      knobs.throttleTriggerThreshold ?? d.triggerThresholdPercent,
      1,
      100,
    ),
  };
}

/** cpuThrottleInitial → cpu-throttle-initial (the flag's name). */
function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** --mode auto's objective and ceiling, checked. */
function resolveAuto(params: MigrateParams): NonNullable<ResolvedMigrateParams['auto']> {
  const objective = params.objective ?? 'downtime';
  if (!OBJECTIVES.includes(objective)) {
    throw invalid(`objective must be one of ${OBJECTIVES.join(', ')}, got "${String(objective)}"`);
  }
  const ceiling = params.maxDowntimeMs;
  if (ceiling !== undefined && !(Number.isFinite(ceiling) && ceiling > 0)) {
    throw invalid(`max-downtime must be > 0 ms, got ${ceiling}`);
  }
  return { objective, maxDowntimeMs: ceiling ?? null };
}

function invalid(text: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', text);
}

/** Check and complete migrate parameters. */
const THROTTLE_KNOBS = [
  'autoConverge',
  'cpuThrottleInitial',
  'cpuThrottleIncrement',
  'maxCpuThrottle',
  'throttleTriggerThreshold',
  'dirtyLimitBps',
] as const satisfies readonly (keyof ThrottleKnobs)[];
const ENCODING_KNOBS = [
  'xbzrle',
  'xbzrleCacheBytes',
  'dedup',
  'compress',
  'compressThreads',
] as const satisfies readonly (keyof EncodingKnobs)[];

/** `params` split into the listed keys and the rest (each group resolved by its own function). */
function split<T extends object, K extends keyof T>(params: T, keys: readonly K[]): [Pick<T, K>, Omit<T, K>] {
  const picked: Partial<Pick<T, K>> = {};
  const rest: Partial<T> = { ...params };
  for (const key of keys) {
    if (params[key] !== undefined) picked[key] = params[key];
    delete rest[key];
  }
  return [picked as Pick<T, K>, rest as Omit<T, K>];
}

export function resolveMigrateParams(mode: string | undefined, params: MigrateParams = {}): ResolvedMigrateParams {
  const auto = mode === 'auto' ? resolveAuto(params) : null;
  if (!auto && (params.objective !== undefined || params.maxDowntimeMs !== undefined)) {
    throw invalid('objective and max-downtime apply to --mode auto only');
  }
  if (auto && params.postcopyAfterRounds != null) {
    throw invalid('postcopy-after is chosen by --mode auto itself: give one or the other');
  }
  // auto starts as hybrid: the fault channel is open, so the choice may still be post-copy.
  const chosen = (auto ? 'hybrid' : (mode ?? 'precopy')) as MigrationMode;
  if (!MIGRATION_MODES.includes(chosen))
    throw invalid(`mode must be one of ${MIGRATION_MODES.join(', ')} or auto, got "${mode}"`);
  const { objective: _objective, maxDowntimeMs: _ceiling, ...rest } = params;
  const [throttleKnobs, afterThrottle] = split(rest, THROTTLE_KNOBS);
  const [encodingKnobs, knobs] = split(afterThrottle, ENCODING_KNOBS);
  const defined = Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined));
  const downtimeLimitMs = (defined.downtimeLimitMs as number | undefined) ?? DEFAULT_MIGRATE_PARAMS.downtimeLimitMs;
  const r: ResolvedMigrateParams = {
    ...DEFAULT_MIGRATE_PARAMS,
    switchoverTimeoutMs: defaultSwitchoverTimeoutMs(downtimeLimitMs),
    ...defined,
    mode: chosen,
    switchoverTimeoutGiven: defined.switchoverTimeoutMs !== undefined,
    auto,
    throttle: resolveThrottle(chosen, throttleKnobs),
    encodings: resolveEncodingParams(encodingKnobs),
  };
  if (!(Number.isFinite(r.downtimeLimitMs) && r.downtimeLimitMs > 0)) {
    throw invalid(`downtime-limit must be > 0 ms, got ${r.downtimeLimitMs}`);
  }
  if (!(Number.isSafeInteger(r.maxRounds) && r.maxRounds >= 1 && r.maxRounds <= 10_000)) {
    throw invalid(`max-rounds must be a whole number in 1..10000, got ${r.maxRounds}`);
  }
  if (r.maxBandwidthBps !== null && !(r.maxBandwidthBps > 0)) {
    throw invalid(`max-bandwidth must be > 0, got ${r.maxBandwidthBps}`);
  }
  if (r.maxPostcopyBandwidthBps !== null) {
    if (!(r.maxPostcopyBandwidthBps > 0)) {
      throw invalid(`max-postcopy-bandwidth must be > 0, got ${r.maxPostcopyBandwidthBps}`);
    }
    if (chosen === 'precopy') throw invalid('max-postcopy-bandwidth applies to --mode postcopy, hybrid or auto');
  }
  if (r.postcopyAfterRounds !== null) {
    if (chosen !== 'hybrid') throw invalid('postcopy-after only applies to --mode hybrid');
    if (!(Number.isSafeInteger(r.postcopyAfterRounds) && r.postcopyAfterRounds >= 1)) {
      throw invalid(`postcopy-after must be a whole number ≥ 1, got ${r.postcopyAfterRounds}`);
    }
  }
  if (!(Number.isSafeInteger(r.channels) && r.channels >= 1 && r.channels <= MAX_CHANNELS)) {
    throw invalid(`channels must be a whole number in 1..${MAX_CHANNELS}, got ${String(r.channels)}`);
  }
  if (!STORAGE_MODES.includes(r.storage)) {
    throw invalid(`storage must be one of ${STORAGE_MODES.join(', ')}, got "${String(r.storage)}"`);
  }
  if (!(Number.isFinite(r.recoveryTimeoutMs) && r.recoveryTimeoutMs >= 0)) {
    throw invalid(`recovery-timeout must be ≥ 0 ms, got ${r.recoveryTimeoutMs}`);
  }
  if (!(Number.isFinite(r.switchoverTimeoutMs) && r.switchoverTimeoutMs >= r.downtimeLimitMs)) {
    throw invalid(
      `switchover-timeout must be ≥ downtime-limit (${r.downtimeLimitMs} ms), got ${r.switchoverTimeoutMs}: ` +
        'the watchdog would resume the VM before the downtime the switchover aims for',
    );
  }
  return r;
}
