/**
 * The convergence throttles in the prediction model (shared/src/predict/throttle.ts and their use
 * in model.ts): QEMU's auto-converge schedule (20 % after two hot rounds, +10 % a hot round, up
 * to 99 %), dirty-limit capping the dirty rate at the limit, the guest running (1 − throttle) of
 * the time — so a hot set that plain pre-copy cannot send converges, at a predicted cost in
 * guest speed. The engine's own controller (agent-source throttle.ts) is checked against the
 * same tables, so the model and the engine cannot drift apart unseen.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AUTO_CONVERGE_DEFAULTS,
  cappedDirtyRate,
  dirtiedIn,
  dirtyLimitPercent,
  guestSpeed,
  nextThrottle,
  predict,
  throttledCurve,
  throttleRising,
  type DirtyCurve,
  type ModelInputs,
  type ThrottleOption,
  type ThrottleState,
} from '../../../../shared/src/predict/index.ts';
import * as engine from '../../../../agent-source/src/migration/throttle.ts';

const MiB = 1024 ** 2;
const P = 4096;
const AC: ThrottleOption = { kind: 'auto-converge', ...AUTO_CONVERGE_DEFAULTS };
const limit = (limitBps: number): ThrottleOption => ({ kind: 'dirty-limit', limitBps, maxPercent: 99 });
const HOT_ROUND = { wireBytes: 100, dirtiedBytes: 60 };
const COOL_ROUND = { wireBytes: 100, dirtiedBytes: 40 };

/** The 64 MiB hot set at 125 MB/s of issue 17's benchmark, dirtying faster than the link sends. */
const HOT: DirtyCurve = { rateBps: 400e6, wssBytes: 64 * MiB };

function inputs(over: Partial<ModelInputs> = {}): ModelInputs {
  return {
    memoryBytes: 256 * MiB,
    pageSize: P,
    dirty: HOT,
    link: { bandwidthBps: 125e6, rttMs: 0.2, source: 'test' },
    downtimeLimitMs: 300,
    maxRounds: 30,
    postcopyAfterRounds: null,
    overheads: { setupMs: 100, switchoverMs: 20, tailMs: 30 },
    ...over,
  };
}

describe('auto-converge: QEMU’s schedule', () => {
  it('starts at 20 % after two hot rounds in a row, adds 10 % each further hot round, stops at 99 %', () => {
    let state: ThrottleState = { percent: 0, hotRounds: 0 };
    const seen: number[] = [];
    for (let i = 0; i < 12; i++) {
      state = nextThrottle(state, HOT_ROUND, AC, HOT);
      seen.push(state.percent);
    }
    expect(seen).toEqual([0, 20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99]);
  });

  it('a round that kept up resets the count and keeps the throttle; it never goes down', () => {
    let state = nextThrottle({ percent: 0, hotRounds: 0 }, HOT_ROUND, AC, HOT);
    state = nextThrottle(state, COOL_ROUND, AC, HOT);
    expect(state).toEqual({ percent: 0, hotRounds: 0 });
    state = nextThrottle(nextThrottle(state, HOT_ROUND, AC, HOT), HOT_ROUND, AC, HOT);
    expect(state.percent).toBe(20);
    expect(nextThrottle(state, COOL_ROUND, AC, HOT)).toEqual({ percent: 20, hotRounds: 0 });
  });

  it('"hot" is dirtied > threshold % of the bytes sent (50 % by default)', () => {
    const hotAt = (dirtied: number) =>
      nextThrottle({ percent: 20, hotRounds: 2 }, { wireBytes: 100, dirtiedBytes: dirtied }, AC, HOT);
    expect(hotAt(50).percent).toBe(20);
    expect(hotAt(50.001).percent).toBe(30);
    const strict = { ...AC, triggerThresholdPercent: 90 };
    expect(nextThrottle({ percent: 20, hotRounds: 2 }, { wireBytes: 100, dirtiedBytes: 80 }, strict, HOT).percent).toBe(
      20,
    );
  });

  it('rising while the last round was hot and under the maximum: "not shrinking" waits then', () => {
    expect(throttleRising({ percent: 40, hotRounds: 3 }, AC)).toBe(true);
    expect(throttleRising({ percent: 99, hotRounds: 9 }, AC)).toBe(false);
    expect(throttleRising({ percent: 40, hotRounds: 0 }, AC)).toBe(false);
    expect(throttleRising({ percent: 40, hotRounds: 3 }, limit(20e6))).toBe(false);
    expect(throttleRising({ percent: 40, hotRounds: 3 }, undefined)).toBe(false);
  });

  it('takes the same steps as the engine’s controller (fast-check over rounds)', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 20 }), (hots) => {
        let model: ThrottleState = { percent: 0, hotRounds: 0 };
        let real: engine.ThrottleState = engine.UNTHROTTLED;
        const settings = { kind: 'auto-converge' as const, ...engine.AUTO_CONVERGE_DEFAULTS };
        for (const hot of hots) {
          const round = hot ? HOT_ROUND : COOL_ROUND;
          model = nextThrottle(model, round, AC, HOT);
          real = engine.nextThrottle(
            real,
            { transferredBytes: round.wireBytes, dirtiedBytes: round.dirtiedBytes, ms: 10, percent: real.percent },
            settings,
          );
          expect(model).toEqual(real);
        }
      }),
    );
    expect(AUTO_CONVERGE_DEFAULTS).toEqual(engine.AUTO_CONVERGE_DEFAULTS);
  });
});

describe('dirty-limit: the dirty rate capped at the limit', () => {
  it('throttle = 1 − limit ÷ rate, in whole percent rounded up; none when the guest is under it', () => {
    expect(dirtyLimitPercent(100e6, 20e6, 99)).toBe(80);
    expect(dirtyLimitPercent(50e6, 20e6, 99)).toBe(60);
    expect(dirtyLimitPercent(30e6, 20e6, 99)).toBe(34);
    expect(dirtyLimitPercent(10e6, 20e6, 99)).toBe(0);
    expect(dirtyLimitPercent(1e12, 1, 99)).toBe(99);
    expect(dirtyLimitPercent(50e6, 20e6, 99)).toBe(engine.dirtyLimitPercent(50e6, 20e6, 99));
  });

  it('caps the rate: at or under the limit, within a percent of it, and untouched below it (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e3, max: 1e10, noNaN: true }),
        fc.double({ min: 1e3, max: 1e10, noNaN: true }),
        (rate, cap) => {
          const capped = cappedDirtyRate(rate, cap, 99);
          if (rate <= cap) expect(capped).toBe(rate);
          else if (rate * 0.01 <= cap) {
            expect(capped).toBeLessThanOrEqual(cap * (1 + 1e-9));
            expect(capped).toBeGreaterThanOrEqual(cap - rate * 0.01 - 1e-6);
          } else expect(capped).toBeCloseTo(rate * 0.01, 3);
        },
      ),
    );
  });

  it('a throttled guest dirties in t what it would in f·t: the curve’s slope times f, its set the same', () => {
    expect(throttledCurve(HOT, 75)).toEqual({ rateBps: 100e6, wssBytes: 64 * MiB });
    expect(dirtiedIn(throttledCurve(HOT, 75), 0.2, 1e12)).toBeCloseTo(dirtiedIn(HOT, 0.05, 1e12), 3);
  });
});

describe('guestSpeed: steps over the rounds ÷ their time ÷ the unthrottled rate', () => {
  it('weights each round’s run fraction by its length', () => {
    expect(guestSpeed([])).toBe(1);
    expect(guestSpeed([{ ms: 100, percent: 0 }])).toBe(1);
    expect(
      guestSpeed([
        { ms: 100, percent: 0 },
        { ms: 100, percent: 50 },
      ]),
    ).toBeCloseTo(0.75, 12);
    expect(
      guestSpeed([
        { ms: 300, percent: 0 },
        { ms: 100, percent: 80 },
      ]),
    ).toBeCloseTo((300 + 20) / 400, 12);
  });
});

describe('the model with a throttle', () => {
  const plain = predict('precopy', inputs());

  it('plain pre-copy cannot send the hot set (it gives up, far over the downtime limit)', () => {
    expect(['max-rounds', 'not-shrinking']).toContain(plain.switchover);
    expect(plain.downtimeMs).toBeGreaterThan(300);
    expect(plain.throttle).toBeUndefined();
  });

  it('auto-converge converges: downtime under the limit, the guest slowed, the throttle on in later rounds', () => {
    const p = predict('precopy', inputs({ options: { throttle: AC } }));
    expect(p.switchover).toBe('converged');
    expect(p.downtimeMs).toBeLessThan(300);
    expect(p.downtimeMs).toBeLessThan(plain.downtimeMs);
    expect(p.throttle!.peakPercent).toBeGreaterThanOrEqual(20);
    expect(p.throttle!.throttledRounds).toBeGreaterThan(0);
    expect(p.throttle!.throttledRounds).toBeLessThan(p.rounds);
    expect(p.throttle!.guestSpeed).toBeLessThan(1);
    expect(p.throttle!.guestSpeed).toBeGreaterThan(0);
    expect(p.options).toEqual({ throttle: AC });
  });

  it('a harder schedule (60 % then +20 %) converges in fewer rounds', () => {
    const gentle = predict('precopy', inputs({ options: { throttle: AC } }));
    const hard = predict(
      'precopy',
      inputs({ options: { throttle: { ...AC, initialPercent: 60, incrementPercent: 20 } } }),
    );
    expect(hard.switchover).toBe('converged');
    expect(hard.rounds).toBeLessThan(gentle.rounds);
  });

  it('dirty-limit: throttled from round 0’s end so the slope is at most the limit; it converges, lower limits cost more', () => {
    const at20 = predict('precopy', inputs({ options: { throttle: limit(20e6) } }));
    const at60 = predict('precopy', inputs({ options: { throttle: limit(60e6) } }));
    expect(at20.switchover).toBe('converged');
    expect(at20.downtimeMs).toBeLessThan(plain.downtimeMs);
    expect(at20.throttle!.peakPercent).toBe(dirtyLimitPercent(HOT.rateBps, 20e6, 99));
    expect(at20.throttle!.throttledRounds).toBe(at20.rounds - 1);
    expect(at20.throttle!.guestSpeed).toBeLessThan(at60.throttle!.guestSpeed);
    expect(at20.downtimeMs).toBeLessThanOrEqual(at60.downtimeMs);
  });

  it('a limit above the guest’s rate changes nothing but the label', () => {
    const p = predict('precopy', inputs({ options: { throttle: limit(1e12) } }));
    expect({ ...p, options: undefined, throttle: undefined }).toStrictEqual({
      ...plain,
      options: undefined,
      throttle: undefined,
    });
    expect(p.throttle).toEqual({ peakPercent: 0, throttledRounds: 0, guestSpeed: 1 });
  });

  it('a pure post-copy has no rounds to throttle: the same prediction', () => {
    const p = predict('postcopy', inputs({ options: { throttle: AC } }));
    expect({ ...p, options: undefined }).toStrictEqual({ ...predict('postcopy', inputs()), options: undefined });
    expect(p.throttle).toBeUndefined();
  });
});
