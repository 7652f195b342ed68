import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checkHistogram,
  latencyHistogram,
  MAX_HISTOGRAM_BUCKETS,
} from '../../../../shared/src/report/latency-histogram.ts';

describe('latencyHistogram: power-of-two microsecond buckets (QEMU postcopy-latency-dist)', () => {
  it('puts each latency in [2^i, 2^(i+1)) µs, under 1 µs in bucket 0, up to the highest non-empty bucket', () => {
    // 0.0005 ms = 0.5 µs → 0; 0.001 ms = 1 µs → 0; 0.003 ms = 3 µs → 1; 0.5 ms = 500 µs → 8; 2 ms = 2000 µs → 10.
    expect(latencyHistogram([0.0005, 0.001, 0.003, 0.5, 0.5, 2])).toEqual({
      bucketsUs: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      counts: [2, 1, 0, 0, 0, 0, 0, 0, 2, 0, 1],
    });
    expect(latencyHistogram([])).toBeNull();
  });

  it('counts every latency once, and a latency beyond the last bucket lands in it', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e9, noNaN: true }), { minLength: 1, maxLength: 200 }), (ms) => {
        const h = latencyHistogram(ms)!;
        expect(h.counts.reduce((a, b) => a + b, 0)).toBe(ms.length);
        expect(h.counts.length).toBeLessThanOrEqual(MAX_HISTOGRAM_BUCKETS);
        expect(h.counts[h.counts.length - 1]).toBeGreaterThan(0);
        expect(checkHistogram(h)).toEqual(h);
      }),
    );
  });

  it('checkHistogram refuses what a peer could send that is not one', () => {
    for (const bad of [
      null,
      'x',
      { bucketsUs: [1, 2], counts: [1] },
      { bucketsUs: [1, 3], counts: [1, 1] },
      { bucketsUs: [1], counts: [-1] },
      { bucketsUs: [1], counts: [0.5] },
      { bucketsUs: [], counts: [] },
      { bucketsUs: Array.from({ length: 33 }, (_, i) => 2 ** i), counts: Array.from({ length: 33 }, () => 1) },
    ]) {
      expect(checkHistogram(bad), JSON.stringify(bad)).toBeNull();
    }
  });
});
