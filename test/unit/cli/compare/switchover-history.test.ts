import { describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import { learnedSwitchoverMs, postcopySwitchoverOf } from '../../../../cli/compare/switchover-history.ts';

/** The fields postcopySwitchoverOf reads, in a report of that shape. */
function report(outcome: string, downtimeMs: number | null, postcopy: boolean): MigrationReport {
  return {
    outcome,
    times: { downtimeMs },
    ...(postcopy ? { postcopy: { faults: 0 } } : {}),
  } as unknown as MigrationReport;
}

describe('the post-copy switchover cost, kept up to date by the run', () => {
  it('is the calibration’s until a post-copy was measured, then the median with those measured', () => {
    expect(learnedSwitchoverMs(3, [])).toBe(3);
    expect(learnedSwitchoverMs(3, [7])).toBe(5);
    expect(learnedSwitchoverMs(3, [7, 9])).toBe(7);
    // One outlier does not carry the next predictions.
    expect(learnedSwitchoverMs(3, [6, 140, 7, 5])).toBe(6);
  });

  it('counts a completed migration through a post-copy switchover: its downtime less 1.5 RTT', () => {
    expect(postcopySwitchoverOf(report('completed', 10, true), 2)).toBe(7);
    expect(postcopySwitchoverOf(report('completed', 2, true), 2)).toBe(0);
  });

  it('does not count a pre-copy, a failed migration, or one without a downtime', () => {
    expect(postcopySwitchoverOf(report('completed', 10, false), 2)).toBeNull();
    expect(postcopySwitchoverOf(report('failed', 10, true), 2)).toBeNull();
    expect(postcopySwitchoverOf(report('completed', null, true), 2)).toBeNull();
  });
});
