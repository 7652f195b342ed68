import { describe, expect, it } from 'vitest';
import { decideSwitchover, expectedDowntimeMs } from '../../../agent-source/src/migration/convergence.ts';

const base = { downtimeLimitMs: 300, maxRounds: 30 };
const PAGE = 4096;
/** Pending bytes after each round, given in 4 KiB pages. */
const pages = (...counts: number[]): number[] => counts.map((n) => n * PAGE);
const MBps = 1e6;

describe('decideSwitchover', () => {
  it.each([
    // [what, input, expected reason]
    [
      'nothing dirty switches at once',
      { roundsDone: 1, pendingBytesAfter: pages(0), bandwidthBps: 100 * MBps },
      'nothing-dirty',
    ],
    // 1000 pages = 4.1 MB at 100 MB/s = 41 ms ≤ 300 ms
    [
      'small dirty set converges',
      { roundsDone: 1, pendingBytesAfter: pages(1000), bandwidthBps: 100 * MBps },
      'converged',
    ],
    // 100k pages = 410 MB at 100 MB/s = 4.1 s > 300 ms
    [
      'large dirty set keeps going',
      { roundsDone: 1, pendingBytesAfter: pages(100_000), bandwidthBps: 100 * MBps },
      undefined,
    ],
    ['max rounds stops', { roundsDone: 30, pendingBytesAfter: pages(100_000), bandwidthBps: 100 * MBps }, 'max-rounds'],
    [
      'dirty set not shrinking for 3 rounds stops',
      { roundsDone: 5, pendingBytesAfter: pages(200_000, 50_000, 52_000, 50_000, 51_000), bandwidthBps: 100 * MBps },
      'not-shrinking',
    ],
    [
      'a shrinking dirty set keeps going',
      { roundsDone: 5, pendingBytesAfter: pages(200_000, 90_000, 80_000, 70_000, 60_000), bandwidthBps: 100 * MBps },
      undefined,
    ],
    [
      'round 0 is not counted as the best (it measures the first pass)',
      { roundsDone: 4, pendingBytesAfter: pages(10_000, 50_000, 52_000, 51_000), bandwidthBps: 100 * MBps },
      undefined,
    ],
    [
      'auto-converge still raising the throttle: a dirty set that stopped shrinking is not given up on',
      {
        roundsDone: 5,
        pendingBytesAfter: pages(200_000, 50_000, 52_000, 50_000, 51_000),
        bandwidthBps: 100 * MBps,
        throttleRising: true,
      },
      undefined,
    ],
    [
      'max rounds stops even while the throttle rises',
      { roundsDone: 30, pendingBytesAfter: pages(100_000), bandwidthBps: 100 * MBps, throttleRising: true },
      'max-rounds',
    ],
    [
      'no bandwidth measured never converges by rule 2',
      { roundsDone: 1, pendingBytesAfter: pages(10), bandwidthBps: 0 },
      undefined,
    ],
  ])('%s', (_what, input, reason) => {
    expect(decideSwitchover({ ...base, ...input }).switchover).toBe(reason);
  });

  it('converged takes precedence over max-rounds (the cheaper truth)', () => {
    expect(
      decideSwitchover({ ...base, roundsDone: 30, pendingBytesAfter: pages(10), bandwidthBps: MBps }).switchover,
    ).toBe('converged');
  });

  it('reports the expected downtime it decided on', () => {
    const decision = decideSwitchover({
      ...base,
      roundsDone: 1,
      pendingBytesAfter: pages(1000),
      bandwidthBps: 4.096 * MBps,
    });
    expect(decision.expectedDowntimeMs).toBeCloseTo(1000, 6);
  });
});

describe('expectedDowntimeMs', () => {
  it('is bytes over bandwidth, 0 for nothing, Infinity without a measurement', () => {
    expect(expectedDowntimeMs(256 * PAGE, 1024 * 1024)).toBeCloseTo(1000, 6);
    expect(expectedDowntimeMs(0, 0)).toBe(0);
    expect(expectedDowntimeMs(PAGE, 0)).toBe(Number.POSITIVE_INFINITY);
  });
});
