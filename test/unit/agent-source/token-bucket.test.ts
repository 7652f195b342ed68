import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../agent-source/src/migration/token-bucket.ts';

/** A fake clock: sleeping advances time, so the test measures the bucket, not the machine. */
function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
    slept,
  };
}

describe('TokenBucket', () => {
  it('never waits without a rate', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ now: clock.now, sleep: clock.sleep });
    for (let i = 0; i < 100; i++) await bucket.take(1 << 20);
    expect(clock.slept).toEqual([]);
  });

  it('paces a long transfer to the rate (within one burst)', async () => {
    const clock = fakeClock();
    const rate = 125e6; // 1 Gbit/s
    const bucket = new TokenBucket({ rateBps: rate, now: clock.now, sleep: clock.sleep });
    const total = 256 * (1 << 20);
    for (let sent = 0; sent < total; sent += 1 << 20) await bucket.take(1 << 20);
    const expectedMs = (total / rate) * 1000;
    const burstMs = (Math.max(64 * 1024, rate / 100) / rate) * 1000;
    expect(clock.now()).toBeGreaterThanOrEqual(expectedMs - burstMs - 1e-6);
    expect(clock.now()).toBeLessThanOrEqual(expectedMs + 1e-6);
  });

  it('lets a burst through without waiting', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ rateBps: 1e6, burstBytes: 100_000, now: clock.now, sleep: clock.sleep });
    await bucket.take(100_000);
    expect(clock.slept).toEqual([]);
    await bucket.take(1000);
    expect(clock.slept.length).toBe(1);
    expect(clock.slept[0]).toBeCloseTo(1, 6);
  });
});
