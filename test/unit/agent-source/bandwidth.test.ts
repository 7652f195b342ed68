import { describe, expect, it } from 'vitest';
import type { RoundReport } from '@livemig/shared/report';
import { bandwidthEstimate, liveBandwidthBps } from '../../../agent-source/src/migration/bandwidth.ts';

const MiB = 1 << 20;
const round = (bytes: number, ms: number): RoundReport => ({
  index: 0,
  pages: 0,
  bytes,
  ms,
  bandwidthBps: (bytes / ms) * 1000,
  dirtyAfter: 0,
});

describe('bandwidthEstimate', () => {
  it.each([
    [
      'the last round, when it measured the link',
      [round(100 * MiB, 100), round(10 * MiB, 20)],
      null,
      (10 * MiB) / 0.02,
    ],
    [
      'the best measured round when the last was too small (< 1 MiB)',
      [round(100 * MiB, 100), round(1000, 1)],
      null,
      (100 * MiB) / 0.1,
    ],
    [
      'the best measured round when the last was too short (< 5 ms)',
      [round(50 * MiB, 100), round(2 * MiB, 1)],
      null,
      (50 * MiB) / 0.1,
    ],
    ['the cap when nothing was measured', [round(1000, 1)], 5e6, 5e6],
    ['1 GB/s when nothing was measured and there is no cap', [], null, 1e9],
  ] as const)('%s', (_what, rounds, cap, expected) => {
    expect(bandwidthEstimate(rounds, cap)).toBeCloseTo(expected, 3);
  });
});

describe('liveBandwidthBps', () => {
  it('is the last round’s, or during round 0 the bytes so far over the time so far', () => {
    expect(liveBandwidthBps(round(10 * MiB, 10), 0, 0)).toBeCloseTo((10 * MiB) / 0.01, 3);
    expect(liveBandwidthBps(undefined, 1000, 500)).toBe(2000);
    expect(liveBandwidthBps(undefined, 1000, 0)).toBe(0);
  });
});
