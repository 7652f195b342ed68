/**
 * Throttling the guest so pre-copy converges: a pure controller (round stats in, next throttle
 * out) for the two techniques, applied by precopy.ts at each round's end and lifted by the
 * context whenever the VM stops running here (the switchover's pause, a rollback, the end).
 *
 * A throttle is a percentage of wall time the vCPU is kept off (QEMU's cpu-throttle-percentage):
 * 20 % lets it run 80 % of the time (ToyVm.setThrottle(0.8)). A paced workload's steps — and so
 * its page writes — slow down by the same factor (vcpu-worker.ts).
 *
 * auto-converge (QEMU: migration/ram.c migration_trigger_throttle + mig_throttle_guest_down):
 *   a round is "hot" when the bytes the guest dirtied during it exceed trigger-threshold % (50)
 *   of the bytes put on the wire during it: the guest dirties faster than half the link.
 *   - the throttle starts (at cpu-throttle-initial, 20 %) after 2 hot rounds in a row;
 *   - once on, every further hot round adds cpu-throttle-increment (10 %), up to
 *     max-cpu-throttle (99 %); a round that kept up changes nothing; it never goes down;
 *   - while the last round was hot and the throttle can still rise, the switchover rule's
 *     "not shrinking" verdict waits (convergence.ts): a hot set stays the same size until the
 *     throttle bites, and giving up then would throw away the cure. max-rounds still holds.
 *   QEMU evaluates once per period of at least 1 s, counts hot periods without resetting the
 *   count on a cool one, and steps only every second hot period (the count restarts after each
 *   step). Our rounds are one period each and typically shorter than a second (a 4 MiB hot set
 *   at 100 MB/s is a 40 ms round), so waiting two per step would keep the guest hot for twice
 *   as many rounds before the throttle bites: here two hot rounds *in a row* (a cool one resets
 *   the count: the throttle in force sufficed) start it and each hot round after that steps it.
 *   QEMU's cpu-throttle-tailslow is not offered.
 *
 * dirty-limit (QEMU 8.1's dirty-limit capability, vcpu-dirty-limit in MB/s): QEMU caps each
 *   vCPU's dirty rate, measured through the KVM dirty ring, by making it sleep. Here the cap is
 *   on the VM's distinct-page dirty rate as the rounds measure it (pages dirtied during a round
 *   × page size ÷ its duration), and the lever is the same throttle. The guest's dirtying is
 *   modelled as shared/src/predict models it: W(t) = S·(1 − e^(−r·t/S)), distinct bytes in a
 *   window of t seconds, r the rate at which it dirties pages (the slope at t = 0), S its
 *   working set. Throttled to a run fraction f a paced guest dirties as r·f, and
 *   W_f(t)/t ≤ r·f for every t — so f = limit ÷ r keeps every round, long or short, at or
 *   under the limit; a saturating hot set stays under it by a margin (its long rounds dirty
 *   less than r·f·t), which is the price of a cap that holds whatever the round length.
 *   - r is re-estimated from each round: the distinct bytes W it dirtied in t seconds at f,
 *     inverted through the curve, r = −S·ln(1 − W/S) ÷ (f·t) with S from the start
 *     measurement's fit (W/S capped at 0.9: a round that filled the set says little of how
 *     fast: the run fraction is then at least halved until a round says more), or W ÷ (f·t)
 *     when the fit saw no bound; an unthrottled round also takes the fitted slope itself as a
 *     floor (round 0 is long, and a long window hides the slope);
 *   - the next throttle is 1 − limit ÷ r, rounded up to a whole percent, between 0 and
 *     max-cpu-throttle — up or down, every round.
 *   QEMU applies the limit only once the auto-converge trigger fired (2 hot periods); a cap
 *   the operator asked for applies here from round 0's end, whatever the link.
 */
import type { RoundReport, ThrottleReport } from '@livemig/shared/report';

// QEMU's defaults (cpu-throttle-initial 20, cpu-throttle-increment 10, max-cpu-throttle 99,
// throttle-trigger-threshold 50), the hot rounds that start the throttle, and the settings' type
// are the prediction model's (shared/src/predict/throttle.ts), which restates this controller:
// one definition, so the model and the engine cannot disagree on QEMU's schedule.
import {
  AUTO_CONVERGE_DEFAULTS,
  dirtyLimitPercent,
  HOT_ROUNDS_TO_START,
  runFraction,
  type ThrottleOption,
} from '@livemig/shared/predict';

export { AUTO_CONVERGE_DEFAULTS, dirtyLimitPercent, HOT_ROUNDS_TO_START, runFraction };

/** What throttles the guest, resolved (params.ts). */
export type ThrottleSettings = ThrottleOption;

/** One finished pre-copy round, as the controller sees it. */
export interface RoundMeasure {
  /** Bytes put on the wire during the round. */
  transferredBytes: number;
  /** Bytes the guest dirtied during the round: pages found dirty at its end × page size. */
  dirtiedBytes: number;
  ms: number;
  /** The throttle in force during the round, percent. */
  percent: number;
}

/** The controller's state between rounds. */
export interface ThrottleState {
  /** The throttle in force, percent (0: none). */
  percent: number;
  /** auto-converge: hot rounds in a row, up to the last one (0: the last round kept up). */
  hotRounds: number;
}

export const UNTHROTTLED: ThrottleState = Object.freeze({ percent: 0, hotRounds: 0 });

/** The throttle (percent) the vCPU is under at run fraction `fraction`, rounded to 0.01 %. */
export function throttlePercentOf(fraction: number): number {
  return Math.round((1 - fraction) * 10_000) / 100;
}

/** auto-converge: did the guest dirty more than the threshold share of what the round sent? */
export function isHotRound(round: RoundMeasure, triggerThresholdPercent: number): boolean {
  return round.dirtiedBytes > (round.transferredBytes * triggerThresholdPercent) / 100;
}

/** auto-converge after one round: QEMU's schedule (see the header for the counting). */
export function autoConvergeStep(
  state: ThrottleState,
  round: RoundMeasure,
  settings: Extract<ThrottleSettings, { kind: 'auto-converge' }>,
): ThrottleState {
  if (!isHotRound(round, settings.triggerThresholdPercent)) return { percent: state.percent, hotRounds: 0 };
  const hotRounds = state.hotRounds + 1;
  if (state.percent > 0) {
    return { percent: Math.min(state.percent + settings.incrementPercent, settings.maxPercent), hotRounds };
  }
  const start = hotRounds >= HOT_ROUNDS_TO_START;
  return { percent: start ? Math.min(settings.initialPercent, settings.maxPercent) : 0, hotRounds };
}

/** What the start measurement's fit says of the guest's dirtying (shared/src/predict DirtyCurve). */
export interface DirtyModel {
  /** Bytes dirtied per second at the start of a window (the slope). */
  rateBps: number;
  /** The working set it saturates at; null: no bound seen. */
  wssBytes: number | null;
}

/** A round that dirtied more than this share of the working set says little of the slope (ln 10 ≈ 2.3× at most). */
export const SATURATED_SHARE = 0.9;

/**
 * The guest's unthrottled dirtying slope (bytes/s) one round implies: its distinct dirtied
 * bytes inverted through the curve at the run fraction in force (see the header).
 */
export function slopeFromRound(
  round: Pick<RoundMeasure, 'dirtiedBytes' | 'ms' | 'percent'>,
  wssBytes: number | null,
): number {
  const seconds = round.ms / 1000;
  const fraction = runFraction(round.percent);
  if (!(seconds > 0) || !(fraction > 0) || !(round.dirtiedBytes > 0)) return 0;
  if (wssBytes === null || !(wssBytes > 0)) return round.dirtiedBytes / (fraction * seconds);
  const share = Math.min(round.dirtiedBytes / wssBytes, SATURATED_SHARE);
  return (-wssBytes * Math.log1p(-share)) / (fraction * seconds);
}

/** The throttle after a round: what to set for the next one (`model`: the start measurement's fit, for dirty-limit). */
export function nextThrottle(
  state: ThrottleState,
  round: RoundMeasure,
  settings: ThrottleSettings,
  model?: DirtyModel | null,
): ThrottleState {
  if (settings.kind === 'auto-converge') return autoConvergeStep(state, round, settings);
  const wss = model?.wssBytes ?? null;
  const measured = slopeFromRound(round, wss);
  // The start measurement saw the guest unthrottled: comparable with an unthrottled round only.
  const slope = round.percent === 0 && model ? Math.max(measured, model.rateBps) : measured;
  let percent = dirtyLimitPercent(slope, settings.limitBps, settings.maxPercent);
  if (wss !== null && round.dirtiedBytes >= SATURATED_SHARE * wss) {
    // The round filled the working set: its slope is only a lower bound. At least halve the
    // time the vCPU runs until a round says how fast it really dirties.
    const halved = Math.ceil(100 - runFraction(round.percent) * 50 - 1e-9);
    percent = Math.max(percent, Math.min(halved, settings.maxPercent));
  }
  return { percent, hotRounds: 0 };
}

/**
 * Is auto-converge at work — the last round was hot and the throttle can still rise? Then the
 * switchover rule does not give up on a dirty set that stopped shrinking (convergence.ts).
 */
export function throttleRising(state: ThrottleState, settings: ThrottleSettings | null): boolean {
  return settings?.kind === 'auto-converge' && state.hotRounds > 0 && state.percent < settings.maxPercent;
}

/** Steps per second over `rounds` (total steps ÷ total time); null for none. */
function stepsPerSecOver(rounds: readonly RoundReport[]): number | null {
  const ms = rounds.reduce((sum, r) => sum + r.ms, 0);
  if (!(ms > 0)) return null;
  return rounds.reduce((sum, r) => sum + ((r.guestStepsPerSec ?? 0) * r.ms) / 1000, 0) / (ms / 1000);
}

/** Pages dirtied during `rounds` × page size ÷ their time, bytes/s; null for none. */
function dirtyRateOver(rounds: readonly RoundReport[], pageSize: number): number | null {
  const ms = rounds.reduce((sum, r) => sum + r.ms, 0);
  return ms > 0 ? (rounds.reduce((sum, r) => sum + r.dirtyAfter, 0) * pageSize * 1000) / ms : null;
}

/** The report's `throttle`: the settings, how far the throttle went, and the guest's speed (pure). */
export function throttleReport(
  settings: ThrottleSettings,
  rounds: readonly RoundReport[],
  pageSize: number,
): ThrottleReport {
  const precopy = rounds.filter((r) => r.cpuThrottlePercent !== undefined);
  const throttled = precopy.filter((r) => (r.cpuThrottlePercent ?? 0) > 0);
  const free = precopy.filter((r) => !((r.cpuThrottlePercent ?? 0) > 0));
  const peakPercent = Math.max(0, ...precopy.map((r) => r.cpuThrottlePercent ?? 0));
  const peak = peakPercent > 0 ? precopy.find((r) => r.cpuThrottlePercent === peakPercent) : undefined;
  const unthrottled = stepsPerSecOver(free);
  const during = stepsPerSecOver(throttled);
  const all = stepsPerSecOver(precopy);
  const ratio = (x: number | null): number | null => (x !== null && unthrottled ? x / unthrottled : null);
  const roundRate = (r: RoundReport): number => (r.ms > 0 ? (r.dirtyAfter * pageSize * 1000) / r.ms : 0);
  return {
    technique: settings.kind,
    maxPercent: settings.maxPercent,
    ...(settings.kind === 'auto-converge'
      ? {
          initialPercent: settings.initialPercent,
          incrementPercent: settings.incrementPercent,
          triggerThresholdPercent: settings.triggerThresholdPercent,
        }
      : { dirtyLimitBps: settings.limitBps }),
    peakPercent,
    peakRound: peak ? peak.index : null,
    throttledRounds: throttled.length,
    unthrottledStepsPerSec: unthrottled,
    throttledStepsPerSec: during,
    speedWhileThrottled: ratio(during),
    speedDuringPrecopy: ratio(all),
    throttledDirtyRateBps: dirtyRateOver(throttled, pageSize),
    maxThrottledRoundDirtyRateBps: throttled.length ? Math.max(...throttled.map(roundRate)) : null,
  };
}
