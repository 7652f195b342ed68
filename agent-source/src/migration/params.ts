/**
 * The knobs of one migration — mode, downtime limit, rounds, bandwidth cap, when hybrid switches
 * to post-copy, how long post-copy recovery keeps trying, how long the VM may stay paused here
 * waiting for the destination at the switchover — resolved once, with finite defaults, every bad
 * value rejected with ERR_INVALID_ARGUMENT naming it.
 */
import { MigrationError } from '@livemig/shared';
import type { MigrateParams } from '@livemig/shared/control';
import { OBJECTIVES, type Objective } from '@livemig/shared/predict';
import { MIGRATION_MODES, STORAGE_MODES, type MigrationMode, type StorageMode } from '@livemig/shared/protocol';

export interface ResolvedMigrateParams {
  mode: MigrationMode;
  /** @default 300 */
  downtimeLimitMs: number;
  /** @default 30 */
  maxRounds: number;
  /** Bytes per second; null = unlimited. @default null */
  maxBandwidthBps: number | null;
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
}

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
    postcopyAfterRounds: null,
    recoveryTimeoutMs: 60_000,
    storage: 'copy',
  });

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
  const { objective: _objective, maxDowntimeMs: _ceiling, ...knobs } = params;
  const defined = Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined));
  const downtimeLimitMs = (defined.downtimeLimitMs as number | undefined) ?? DEFAULT_MIGRATE_PARAMS.downtimeLimitMs;
  const r: ResolvedMigrateParams = {
    ...DEFAULT_MIGRATE_PARAMS,
    switchoverTimeoutMs: defaultSwitchoverTimeoutMs(downtimeLimitMs),
    ...defined,
    mode: chosen,
    switchoverTimeoutGiven: defined.switchoverTimeoutMs !== undefined,
    auto,
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
  if (r.postcopyAfterRounds !== null) {
    if (chosen !== 'hybrid') throw invalid('postcopy-after only applies to --mode hybrid');
    if (!(Number.isSafeInteger(r.postcopyAfterRounds) && r.postcopyAfterRounds >= 1)) {
      throw invalid(`postcopy-after must be a whole number ≥ 1, got ${r.postcopyAfterRounds}`);
    }
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
