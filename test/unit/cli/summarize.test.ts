import { describe, expect, it } from 'vitest';
import { longestGapOverlapping, summarizeProbe } from '../../../cli/probe/summarize.ts';

const sent = new Map([1, 2, 3, 4, 5].map((id) => [id, id * 10]));

describe('summarizeProbe', () => {
  it('no reply at all: everything lost, down for the whole run', () => {
    const s = summarizeProbe(sent, new Map(), 0, 100);
    expect(s).toMatchObject({ sent: 5, replies: 0, lostReplies: 5, networkDowntimeMs: 100, latencyMs: null });
  });

  it('the longest gap between replies is the network downtime; latencies are reply − send', () => {
    // Replies at 11, 21, 61 (ids 3 and 4 lost), run ends at 70.
    const replied = new Map([
      [1, 11],
      [2, 21],
      [5, 61],
    ]);
    const s = summarizeProbe(sent, replied, 0, 70);
    expect(s.lostReplies).toBe(2);
    expect(s.networkDowntimeMs).toBe(40);
    expect(s.latencyMs).toEqual({ p50: 1, p99: 11, max: 11 });
  });

  it('the edges count: a long wait for the first reply is downtime too', () => {
    const s = summarizeProbe(new Map([[1, 0]]), new Map([[1, 90]]), 0, 95);
    expect(s.networkDowntimeMs).toBe(90);
  });

  it('replies to ids never sent are ignored', () => {
    const s = summarizeProbe(new Map([[1, 0]]), new Map([[7, 5]]), 0, 10);
    expect(s.replies).toBe(0);
  });
});

describe('longestGapOverlapping', () => {
  const arrivals = [0, 1, 2, 40, 41, 42, 100, 101];
  it('finds the gap around a window, not a longer one elsewhere', () => {
    // Paused at 10 for 5 ms: the gap 2 → 40 spans it; the longer 42 → 100 does not.
    expect(longestGapOverlapping(arrivals, 10, 15)).toBe(38);
  });
  it('a gap that only touches the window counts; none overlapping gives 0', () => {
    expect(longestGapOverlapping(arrivals, 42, 43)).toBe(58);
    expect(longestGapOverlapping(arrivals, 200, 210)).toBe(0);
  });
});
