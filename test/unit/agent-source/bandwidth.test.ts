import { describe, expect, it } from 'vitest';
import type { RoundReport } from '@livemig/shared/report';
import { bandwidthEstimate, etaMs, liveSample } from '../../../agent-source/src/migration/bandwidth.ts';

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

describe('liveSample', () => {
  const sample = (pages: number, bytes: number, ms: number) => ({ pages, bytes, ms });

  it('is the stretch in progress once it moved 1 MiB over 5 ms', () => {
    const current = sample(512, 2 * MiB, 20);
    expect(liveSample(current, [round(100 * MiB, 100)])).toBe(current);
  });

  it('is the last round that measured the link while the stretch in progress is too small or too short', () => {
    const rounds = [round(100 * MiB, 100), round(50 * MiB, 100), round(1000, 1)];
    expect(liveSample(sample(10, 40_000, 50), rounds)).toBe(rounds[1]);
    expect(liveSample(sample(512, 2 * MiB, 2), rounds)).toBe(rounds[1]);
    expect(liveSample(undefined, rounds)).toBe(rounds[1]);
  });

  it('is unknown (undefined) when nothing measured the link: no guess, no cap', () => {
    expect(liveSample(undefined, [])).toBeUndefined();
    expect(liveSample(sample(1, 4096, 1000), [round(1000, 1)])).toBeUndefined();
  });
});

describe('etaMs', () => {
  const pageSize = 4096;

  it('is the pages remaining over the pages per ms measured', () => {
    // 1000 pages in 100 ms: 10 pages/ms; 64 MiB = 16384 pages → 1638.4 ms.
    expect(etaMs(64 * MiB, { pages: 1000, bytes: 1000 * pageSize, ms: 100 }, pageSize)).toBeCloseTo(1638.4, 6);
  });

  it('counts pages, not wire bytes: zero pages cost a few bytes on the wire but are pages to go', () => {
    expect(etaMs(1000 * pageSize, { pages: 1000, bytes: 5000, ms: 10 }, pageSize)).toBe(10);
  });

  it('is 0 with nothing remaining, and unknown (undefined) without a measurement', () => {
    expect(etaMs(0, undefined, pageSize)).toBe(0);
    expect(etaMs(MiB, undefined, pageSize)).toBeUndefined();
    expect(etaMs(MiB, { pages: 0, bytes: 2 * MiB, ms: 10 }, pageSize)).toBeUndefined();
  });
});
