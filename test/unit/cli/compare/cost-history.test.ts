import { describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import {
  costSamplesOf,
  emptyCostHistory,
  learned,
  learnedCosts,
  recordCosts,
} from '../../../../cli/compare/cost-history.ts';

const MB = 1e6;

/** The fields costSamplesOf reads, in a report of that shape (`rounds`: [bytes, ms] each). */
function report(
  outcome: string,
  downtimeMs: number | null,
  postcopy: boolean,
  rounds: [number, number][] = [],
): MigrationReport {
  return {
    outcome,
    times: { downtimeMs },
    rounds: rounds.map(([bytes, ms], index) => ({ index, bytes, ms })),
    ...(postcopy ? { postcopy: { faults: 0 } } : {}),
  } as unknown as MigrationReport;
}

const PRIOR = { precopySwitchoverMs: 3, postcopySwitchoverMs: 2, stopCopyBps: 240 * MB };

describe('the costs, kept up to date by the run', () => {
  it('are the calibration’s until a cell was measured, then the median with those measured', () => {
    expect(learned(3, [])).toBe(3);
    expect(learned(3, [7])).toBe(5);
    expect(learned(3, [7, 9])).toBe(7);
    // One outlier does not carry the next predictions.
    expect(learned(3, [6, 140, 7, 5])).toBe(6);
  });

  it('learn each cost from its own samples', () => {
    const history = emptyCostHistory();
    expect(learnedCosts(PRIOR, history, false)).toEqual(PRIOR);
    recordCosts(history, { precopySwitchoverMs: 1, stopCopyBps: 480 * MB }, false);
    recordCosts(history, { precopySwitchoverMs: 1, stopCopyBps: 500 * MB }, false);
    recordCosts(history, { postcopySwitchoverMs: 8 }, false);
    expect(learnedCosts(PRIOR, history, false)).toEqual({
      precopySwitchoverMs: 1,
      postcopySwitchoverMs: 5,
      stopCopyBps: 480 * MB,
    });
  });

  it('keep a VM with a NIC apart: its prior is the figure without one, until one was measured', () => {
    const history = emptyCostHistory();
    recordCosts(history, { postcopySwitchoverMs: 4 }, false);
    recordCosts(history, { postcopySwitchoverMs: 4 }, false);
    // Without a VM with a NIC measured yet, it is predicted as the others.
    expect(learnedCosts(PRIOR, history, true).postcopySwitchoverMs).toBe(4);
    recordCosts(history, { postcopySwitchoverMs: 14 }, true);
    recordCosts(history, { postcopySwitchoverMs: 16 }, true);
    expect(learnedCosts(PRIOR, history, true).postcopySwitchoverMs).toBe(14);
    // The VMs without one are not moved by it.
    expect(learnedCosts(PRIOR, history, false).postcopySwitchoverMs).toBe(4);
  });

  it('without a measured stop-and-copy rate, take the cells’ alone', () => {
    const history = emptyCostHistory();
    const prior = { ...PRIOR, stopCopyBps: undefined };
    expect(learnedCosts(prior, history, false).stopCopyBps).toBeUndefined();
    recordCosts(history, { stopCopyBps: 400 * MB }, false);
    expect(learnedCosts(prior, history, false).stopCopyBps).toBe(400 * MB);
  });
});

describe('what a migration measured of the costs', () => {
  it('a post-copy switchover: its downtime less 1.5 RTT', () => {
    expect(costSamplesOf(report('completed', 10, true), 2, undefined)).toEqual({ postcopySwitchoverMs: 7 });
    expect(costSamplesOf(report('completed', 2, true), 2, undefined)).toEqual({ postcopySwitchoverMs: 0 });
  });

  it('a stop-and-copy of a large final set: its rate, not its switchover', () => {
    // 16 MB in 32 ms: 500 MB/s.
    const big = report('completed', 45, false, [
      [128 * MB, 400],
      [16 * MB, 32],
    ]);
    expect(costSamplesOf(big, 2, 400 * MB)).toEqual({ stopCopyBps: 500 * MB });
    // Too quick to time: nothing.
    const quick = report('completed', 45, false, [[16 * MB, 4]]);
    expect(costSamplesOf(quick, 2, 400 * MB)).toEqual({});
    // A few RTTs long: mostly waiting, not sending — nothing either (1.1 MB in 140 ms, 43 ms RTT).
    const wan = report('completed', 153, false, [[1.1 * MB, 140]]);
    expect(costSamplesOf(wan, 43, 12 * MB)).toEqual({});
    expect(costSamplesOf(wan, 20, 12 * MB)).toEqual({ stopCopyBps: expect.closeTo((1.1 * MB) / 0.14, 3) });
  });

  it('a stop-and-copy of a small final set: its switchover, the downtime less 1.5 RTT and the set at the predicted rate', () => {
    const kv = report('completed', 12, false, [
      [128 * MB, 400],
      [0.8 * MB, 3],
    ]);
    // At 400 MB/s the set takes 2 ms: 12 − 1.5 − 2.
    expect(costSamplesOf(kv, 1, 400 * MB)).toEqual({ precopySwitchoverMs: expect.closeTo(8.5, 9) });
    // Without a predicted rate, the round's own time.
    expect(costSamplesOf(kv, 1, undefined)).toEqual({ precopySwitchoverMs: expect.closeTo(7.5, 9) });
    // An idle VM's: never below zero.
    const idle = report('completed', 1, false, [
      [128 * MB, 400],
      [427, 2.5],
    ]);
    expect(costSamplesOf(idle, 1, 400 * MB)).toEqual({ precopySwitchoverMs: 0 });
  });

  it('nothing from a failed migration, one without a downtime, or one without rounds', () => {
    expect(costSamplesOf(report('failed', 10, true), 2, undefined)).toEqual({});
    expect(costSamplesOf(report('completed', null, true), 2, undefined)).toEqual({});
    expect(costSamplesOf(report('completed', 10, false), 2, undefined)).toEqual({});
  });
});
