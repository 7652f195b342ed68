/**
 * The convergence throttles in the prediction model (issue 17): throttling changes the dirty
 * rate, and costs the guest its speed. Pure; the engine's controller is agent-source
 * migration/throttle.ts, restated here (a shared import would tie the two packages together).
 *
 * A throttle of p % keeps the vCPU off p % of the wall time: the guest runs a fraction
 * f = 1 − p/100 of it (QEMU's cpu-throttle-percentage; ToyVm.setThrottle(f)). A paced guest's
 * writes slow by the same factor, so in a window of t seconds it writes what it would have in
 * f·t: the distinct bytes it dirties are W(f·t) (dirty-curve.ts) — the curve's slope becomes
 * f·r — and it does f of its work (its steps/s relative to unthrottled: the slowdown).
 *
 * auto-converge (QEMU migration/ram.c migration_trigger_throttle, mig_throttle_guest_down, with
 * its defaults: cpu-throttle-initial 20 %, cpu-throttle-increment 10 %, max-cpu-throttle 99 %,
 * throttle-trigger-threshold 50 %): a round is hot when the bytes the guest dirtied during it
 * exceed the threshold share of the bytes it put on the wire; two hot rounds in a row start the
 * throttle at the initial value, each further hot round adds the increment, up to the maximum;
 * a round that kept up resets the count and leaves the throttle as it is. While the last round
 * was hot and the throttle can still rise, the switchover rule's "not shrinking" waits.
 *
 * dirty-limit (QEMU 8.1's dirty-limit): the guest's dirty rate capped at the limit — from round
 * 0's end the throttle is 1 − limit ÷ r (whole percent, rounded up, at most max-cpu-throttle),
 * r the curve's slope, so the slope becomes min(r, limit). The engine re-estimates r each round
 * from what the round dirtied; in the model the curve is the truth, so r is the curve's rate.
 */
import type { DirtyCurve, ThrottleOption } from './types.ts';

/** QEMU's defaults (agent-source throttle.ts AUTO_CONVERGE_DEFAULTS). */
export const AUTO_CONVERGE_DEFAULTS = Object.freeze({
  initialPercent: 20,
  incrementPercent: 10,
  maxPercent: 99,
  triggerThresholdPercent: 50,
});
/** Hot rounds in a row that start auto-converge's throttle. */
export const HOT_ROUNDS_TO_START = 2;

/** The throttle in force between rounds: percent, and auto-converge's hot rounds in a row. */
export interface ThrottleState {
  percent: number;
  hotRounds: number;
}

export const UNTHROTTLED: Readonly<ThrottleState> = Object.freeze({ percent: 0, hotRounds: 0 });

/** The fraction of wall time the guest runs under a throttle of `percent`. */
export function runFraction(percent: number): number {
  return 1 - percent / 100;
}

/** The guest's dirty curve under a throttle of `percent`: the slope times the run fraction, the working set the same. */
export function throttledCurve(curve: DirtyCurve, percent: number): DirtyCurve {
  return { rateBps: curve.rateBps * runFraction(percent), wssBytes: curve.wssBytes };
}

/** dirty-limit: the throttle (whole percent, 0..maxPercent) that brings a slope of `rateBps` under `limitBps`. */
export function dirtyLimitPercent(rateBps: number, limitBps: number, maxPercent: number): number {
  if (!(rateBps > limitBps)) return 0;
  // The epsilon keeps 1 − 0.6 = 0.4000000000000001 from rounding 60 % up to 61 % (as the engine does).
  return Math.min(Math.max(Math.ceil(100 * (1 - limitBps / rateBps) - 1e-9), 0), maxPercent);
}

/** The dirty rate a limit leaves: the curve's slope capped at the limit (whole-percent throttle, so at or under it). */
export function cappedDirtyRate(rateBps: number, limitBps: number, maxPercent: number): number {
  return rateBps * runFraction(dirtyLimitPercent(rateBps, limitBps, maxPercent));
}

/** One finished round, as the controller sees it. */
export interface ThrottleRound {
  /** Bytes put on the wire during the round. */
  wireBytes: number;
  /** Bytes the guest dirtied during it (distinct pages × page size). */
  dirtiedBytes: number;
}

/** The throttle after a round (see the header), for the next round. */
export function nextThrottle(
  state: ThrottleState,
  round: ThrottleRound,
  option: ThrottleOption,
  curve: DirtyCurve,
): ThrottleState {
  if (option.kind === 'dirty-limit') {
    return { percent: dirtyLimitPercent(curve.rateBps, option.limitBps, option.maxPercent), hotRounds: 0 };
  }
  const hot = round.dirtiedBytes > (round.wireBytes * option.triggerThresholdPercent) / 100;
  if (!hot) return { percent: state.percent, hotRounds: 0 };
  const hotRounds = state.hotRounds + 1;
  if (state.percent > 0) {
    return { percent: Math.min(state.percent + option.incrementPercent, option.maxPercent), hotRounds };
  }
  const start = hotRounds >= HOT_ROUNDS_TO_START;
  return { percent: start ? Math.min(option.initialPercent, option.maxPercent) : 0, hotRounds };
}

/** auto-converge still raising the throttle (the last round was hot, below the maximum): "not shrinking" waits. */
export function throttleRising(state: ThrottleState, option: ThrottleOption | undefined): boolean {
  return option?.kind === 'auto-converge' && state.hotRounds > 0 && state.percent < option.maxPercent;
}

/**
 * The guest's speed over pre-copy relative to unthrottled: Σ fᵢ·tᵢ ÷ Σ tᵢ over the rounds (the
 * report's throttle.speedDuringPrecopy measures the same: steps over the rounds ÷ their time ÷
 * the unthrottled rate). 1 with no round.
 */
export function guestSpeed(rounds: readonly { ms: number; percent: number }[]): number {
  const ms = rounds.reduce((a, r) => a + r.ms, 0);
  if (!(ms > 0)) return 1;
  return rounds.reduce((a, r) => a + runFraction(r.percent) * r.ms, 0) / ms;
}
