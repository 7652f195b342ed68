/**
 * The throttle controller (agent-source/src/migration/throttle.ts), pure: round stats in, next
 * throttle out. auto-converge follows QEMU's schedule (20 %, +10 %, at most 99 %; a round is hot
 * when it dirtied more than 50 % of what it sent; two hot rounds in a row start it); dirty-limit
 * derives the throttle from the guest's dirtying slope so that no round, long or short, dirties
 * faster than the limit — checked against the model guest the prediction model fits.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RoundReport } from '@livemig/shared/report';
import {
  AUTO_CONVERGE_DEFAULTS,
  autoConvergeStep,
  dirtyLimitPercent,
  isHotRound,
  nextThrottle,
  runFraction,
  SATURATED_SHARE,
  slopeFromRound,
  throttlePercentOf,
  throttleReport,
  throttleRising,
  UNTHROTTLED,
  type RoundMeasure,
  type ThrottleSettings,
  type ThrottleState,
} from '../../../agent-source/src/migration/throttle.ts';

const MB = 1e6;
const MiB = 1 << 20;
const AUTO: Extract<ThrottleSettings, { kind: 'auto-converge' }> = { kind: 'auto-converge', ...AUTO_CONVERGE_DEFAULTS };

/** A round that sent 4 MB and dirtied `dirtied` MB of it again. */
const round = (dirtied: number, percent = 0): RoundMeasure => ({
  transferredBytes: 4 * MB,
  dirtiedBytes: dirtied * MB,
  ms: 250,
  percent,
});
const HOT = 3; // 75 % of what it sent
const COOL = 1; // 25 %

/** The throttles auto-converge sets after each of `rounds` (dirtied MB per round). */
function schedule(rounds: readonly number[], settings = AUTO): number[] {
  let state: ThrottleState = UNTHROTTLED;
  return rounds.map((dirtied) => (state = autoConvergeStep(state, round(dirtied, state.percent), settings)).percent);
}

describe('auto-converge: QEMU schedule', () => {
  it('QEMU defaults: initial 20 %, increment 10 %, max 99 %, trigger threshold 50 %', () => {
    expect(AUTO_CONVERGE_DEFAULTS).toEqual({
      initialPercent: 20,
      incrementPercent: 10,
      maxPercent: 99,
      triggerThresholdPercent: 50,
    });
  });

  it.each([
    // [what, dirtied MB per round (of 4 MB sent), throttle after each round]
    ['one hot round is not enough', [HOT], [0]],
    ['two hot rounds in a row start it at 20 %', [HOT, HOT], [0, 20]],
    ['each further hot round adds 10 %', [HOT, HOT, HOT, HOT], [0, 20, 30, 40]],
    ['a cool round between two hot ones resets the count', [HOT, COOL, HOT, HOT], [0, 0, 0, 20]],
    [
      'a cool round keeps the throttle where it is (it never goes down)',
      [HOT, HOT, HOT, COOL, COOL],
      [0, 20, 30, 30, 30],
    ],
    [
      'it stops at 99 %, not 100',
      [HOT, HOT, HOT, HOT, HOT, HOT, HOT, HOT, HOT, HOT, HOT, HOT],
      [0, 20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99],
    ],
    ['cool rounds never start it', [COOL, COOL, COOL], [0, 0, 0]],
  ])('%s', (_what, rounds, expected) => {
    expect(schedule(rounds)).toEqual(expected);
  });

  it('takes the knobs: initial 50, increment 25, max 90', () => {
    const settings = { ...AUTO, initialPercent: 50, incrementPercent: 25, maxPercent: 90 };
    expect(schedule([HOT, HOT, HOT, HOT], settings)).toEqual([0, 50, 75, 90]);
  });

  it('hot means more than threshold % of the bytes sent were dirtied again (strictly)', () => {
    expect(isHotRound(round(2), 50)).toBe(false); // exactly 50 %
    expect(isHotRound({ ...round(2), dirtiedBytes: 2 * MB + 1 }, 50)).toBe(true);
    expect(isHotRound(round(3), 80)).toBe(false);
    expect(isHotRound(round(3.3), 80)).toBe(true);
    expect(isHotRound({ ...round(0), transferredBytes: 0 }, 50)).toBe(false);
  });

  it('the switchover rule waits while the last round was hot and the throttle can still rise', () => {
    expect(throttleRising({ percent: 0, hotRounds: 1 }, AUTO)).toBe(true);
    expect(throttleRising({ percent: 40, hotRounds: 3 }, AUTO)).toBe(true);
    expect(throttleRising({ percent: 40, hotRounds: 0 }, AUTO)).toBe(false); // the last round kept up
    expect(throttleRising({ percent: 99, hotRounds: 5 }, AUTO)).toBe(false); // nothing left to give
    expect(throttleRising({ percent: 40, hotRounds: 3 }, { kind: 'dirty-limit', limitBps: MB, maxPercent: 99 })).toBe(
      false,
    );
    expect(throttleRising({ percent: 0, hotRounds: 2 }, null)).toBe(false);
  });

  it('percent ↔ run fraction: 20 % throttle = runs 80 % of the time', () => {
    expect(runFraction(20)).toBeCloseTo(0.8, 12);
    expect(runFraction(0)).toBe(1);
    expect(throttlePercentOf(0.8)).toBe(20);
    expect(throttlePercentOf(1)).toBe(0);
    expect(throttlePercentOf(0.01)).toBe(99);
  });
});

describe('dirty-limit', () => {
  const limit: ThrottleSettings = { kind: 'dirty-limit', limitBps: 4 * MB, maxPercent: 99 };

  it('the throttle that brings a slope down to the limit, rounded up to a whole percent', () => {
    expect(dirtyLimitPercent(10 * MB, 4 * MB, 99)).toBe(60); // exactly 60 (no float round-up to 61)
    expect(dirtyLimitPercent(9 * MB, 4 * MB, 99)).toBe(56); // 55.6 → 56: never over the limit
    expect(dirtyLimitPercent(4 * MB, 4 * MB, 99)).toBe(0);
    expect(dirtyLimitPercent(1 * MB, 4 * MB, 99)).toBe(0);
    expect(dirtyLimitPercent(0, 4 * MB, 99)).toBe(0);
    expect(dirtyLimitPercent(1000 * MB, 4 * MB, 99)).toBe(99);
    expect(dirtyLimitPercent(1000 * MB, 4 * MB, 80)).toBe(80);
  });

  it('a round implies a slope: linear without a known working set, inverted through the curve with one', () => {
    // 2 MB in 250 ms at 50 %: 16 MB/s unthrottled, on a straight line.
    expect(slopeFromRound({ dirtiedBytes: 2 * MB, ms: 250, percent: 50 }, null)).toBeCloseTo(16 * MB, 3);
    // The same round from a 4 MB set: half of it dirtied means r·f·t = S·ln 2.
    const r = slopeFromRound({ dirtiedBytes: 2 * MB, ms: 250, percent: 50 }, 4 * MB);
    expect(r).toBeCloseTo((4 * MB * Math.LN2) / (0.5 * 0.25), 3);
    // A round that filled the set says little: counted as SATURATED_SHARE of it.
    const full = slopeFromRound({ dirtiedBytes: 4 * MB, ms: 250, percent: 0 }, 4 * MB);
    expect(full).toBeCloseTo((-4 * MB * Math.log1p(-SATURATED_SHARE)) / 0.25, 3);
    expect(slopeFromRound({ dirtiedBytes: 0, ms: 250, percent: 0 }, null)).toBe(0);
    expect(slopeFromRound({ dirtiedBytes: MB, ms: 0, percent: 0 }, null)).toBe(0);
  });

  it("an unthrottled round also takes the start measurement's slope as a floor; a throttled one does not", () => {
    const model = { rateBps: 40 * MB, wssBytes: null };
    // Round 0 saw 8 MB/s (long, saturated); the start curve's slope says 40: 90 %.
    expect(nextThrottle(UNTHROTTLED, { ...round(2), ms: 250 }, limit, model).percent).toBe(90);
    // Throttled to 90 %, the guest dirtied 1 MB in 250 ms: 40 MB/s unthrottled → 90 % again.
    expect(nextThrottle({ percent: 90, hotRounds: 0 }, { ...round(1, 90) }, limit, model).percent).toBe(90);
    // The guest slowed down: the throttle comes down with it.
    expect(nextThrottle({ percent: 90, hotRounds: 0 }, { ...round(0.2, 90) }, limit, model).percent).toBe(50);
    // Dirtying under the limit: no throttle at all.
    expect(nextThrottle(UNTHROTTLED, round(0.5), limit, null).percent).toBe(0);
  });

  it('a round that filled the working set never lowers the throttle: the run fraction is at least halved', () => {
    const model = { rateBps: 5 * MB, wssBytes: 4 * MB };
    // 3.8 MB of a 4 MB set at 40 % in 250 ms: counted as 90 % of it, ~61 MB/s, so 94 % (halving 0.6 says 70 %).
    expect(nextThrottle({ percent: 40, hotRounds: 0 }, round(3.8, 40), limit, model).percent).toBe(94);
    // A slow-looking saturated round (a long one): the inverted slope is low, halving wins.
    const long = { ...round(3.8, 40), ms: 5000 };
    expect(nextThrottle({ percent: 40, hotRounds: 0 }, long, limit, model).percent).toBe(70);
    expect(nextThrottle({ percent: 98, hotRounds: 0 }, { ...long, percent: 98 }, limit, model).percent).toBe(99);
  });

  // The model guest (shared/src/predict/dirty-curve.ts): S·(1 − e^(−r·f·t/S)) distinct bytes in t
  // seconds at run fraction f. Whatever the guest, the previous throttle and the round lengths,
  // once the controller measured a round that did not fill the working set, every later round
  // stays at or under the limit.
  it('holds any model guest under the limit, in rounds of any length (fast-check)', () => {
    const dirtied = (r: number, s: number | null, f: number, t: number): number =>
      s === null ? r * f * t : s * -Math.expm1((-r * f * t) / s);
    fc.assert(
      fc.property(
        fc.double({ min: 1 * MB, max: 2000 * MB, noNaN: true }), // r: the guest's slope
        fc.option(fc.double({ min: 64 * 1024, max: 4096 * MiB, noNaN: true }), { nil: null }), // S
        fc.double({ min: 0.1 * MB, max: 1000 * MB, noNaN: true }), // the limit
        fc.integer({ min: 0, max: 99 }), // the throttle the measured round ran at
        fc.double({ min: 0.005, max: 20, noNaN: true }), // its length, s
        fc.double({ min: 0.005, max: 20, noNaN: true }), // the next round's length, s
        (r, s, limitBps, before, t1, t2) => {
          const settings: ThrottleSettings = { kind: 'dirty-limit', limitBps, maxPercent: 99 };
          const w = dirtied(r, s, runFraction(before), t1);
          fc.pre(s === null || w < SATURATED_SHARE * s);
          const measured = {
            transferredBytes: 0,
            dirtiedBytes: w,
            ms: t1 * 1000,
            percent: before,
          };
          // The start measurement fitted the same curve (its slope, its set).
          const next = nextThrottle({ percent: before, hotRounds: 0 }, measured, settings, { rateBps: r, wssBytes: s });
          const rate = dirtied(r, s, runFraction(next.percent), t2) / t2;
          // At 99 % the guest may still outrun a tiny limit: the most it can be throttled.
          const floor = next.percent === 99 ? dirtied(r, s, 0.01, t2) / t2 : limitBps;
          return rate <= Math.max(limitBps, floor) * (1 + 1e-9);
        },
      ),
    );
  });
});

describe('throttleReport', () => {
  const r = (
    index: number,
    percent: number | undefined,
    stepsPerSec: number | undefined,
    dirtyAfter = 0,
  ): RoundReport => ({
    index,
    pages: 100,
    bytes: 409_600,
    ms: 200,
    bandwidthBps: 2_048_000,
    dirtyAfter,
    ...(percent === undefined ? {} : { cpuThrottlePercent: percent }),
    ...(stepsPerSec === undefined ? {} : { guestStepsPerSec: stepsPerSec }),
  });

  it('peak and the first round at it, the guest speed while throttled and over pre-copy; stop-and-copy left out', () => {
    const rounds = [
      r(0, 0, 10_000),
      r(1, 0, 10_000),
      r(2, 20, 8_000),
      r(3, 30, 7_000),
      r(4, 30, 7_000),
      r(5, undefined, undefined),
    ];
    const t = throttleReport(AUTO, rounds, 4096);
    expect(t).toMatchObject({
      technique: 'auto-converge',
      initialPercent: 20,
      incrementPercent: 10,
      triggerThresholdPercent: 50,
      maxPercent: 99,
      peakPercent: 30,
      peakRound: 3,
      throttledRounds: 3,
      unthrottledStepsPerSec: 10_000,
    });
    expect(t.throttledStepsPerSec).toBeCloseTo(22_000 / 3, 6);
    expect(t.speedWhileThrottled).toBeCloseTo(22_000 / 3 / 10_000, 9);
    expect(t.speedDuringPrecopy).toBeCloseTo(42_000 / 5 / 10_000, 9);
    expect(t.dirtyLimitBps).toBeUndefined();
  });

  it('never throttled: no peak round, no throttled speed', () => {
    const t = throttleReport(
      { kind: 'dirty-limit', limitBps: 4 * MB, maxPercent: 99 },
      [r(0, 0, 5_000), r(1, undefined, undefined)],
      4096,
    );
    expect(t).toMatchObject({
      technique: 'dirty-limit',
      dirtyLimitBps: 4 * MB,
      peakPercent: 0,
      peakRound: null,
      throttledRounds: 0,
    });
    expect(t.throttledStepsPerSec).toBeNull();
    expect(t.speedWhileThrottled).toBeNull();
    expect(t.speedDuringPrecopy).toBe(1);
    expect(t.throttledDirtyRateBps).toBeNull();
    expect(t.maxThrottledRoundDirtyRateBps).toBeNull();
  });

  it('dirty-limit: the dirty rate the throttled rounds measured', () => {
    // 200 ms rounds: 100 pages = 2.048 MB/s, 200 pages = 4.096 MB/s.
    const rounds = [r(0, 0, 10_000, 900), r(1, 80, 2_000, 100), r(2, 70, 3_000, 200)];
    const t = throttleReport({ kind: 'dirty-limit', limitBps: 4 * MB, maxPercent: 99 }, rounds, 4096);
    expect(t.throttledDirtyRateBps).toBeCloseTo((300 * 4096) / 0.4, 6);
    expect(t.maxThrottledRoundDirtyRateBps).toBeCloseTo((200 * 4096) / 0.2, 6);
    expect(t.peakRound).toBe(1);
  });
});
