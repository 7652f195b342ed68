import { describe, expect, it } from 'vitest';
import { downtimeFrom } from '../../../agent-source/src/migration/downtime.ts';

describe('downtimeFrom (one clock, one exchange)', () => {
  it.each([
    // paused at 0, Handoff sent at 10, Resumed seen at 14, destination held 2 → RTT 2, one way 1 → downtime 13
    [
      'subtracts half the RTT without the destination hold',
      { pausedAt: 0, handoffSentAt: 10, resumedSeenAt: 14, destHoldMs: 2 },
      13,
      2,
    ],
    [
      'a hold longer than the exchange never makes the RTT negative',
      { pausedAt: 0, handoffSentAt: 10, resumedSeenAt: 11, destHoldMs: 5 },
      11,
      0,
    ],
    [
      'a nonsense hold (negative, NaN) counts as none',
      { pausedAt: 5, handoffSentAt: 10, resumedSeenAt: 12, destHoldMs: Number.NaN },
      6,
      2,
    ],
  ] as const)('%s', (_what, timing, downtime, rtt) => {
    const figures = downtimeFrom(timing);
    expect(figures.downtimeMs).toBeCloseTo(downtime, 9);
    expect(figures.rttMs).toBeCloseTo(rtt, 9);
  });
});
