/** The token bucket behind the control plane's per-client rate limit, on a clock stepped by hand. */
import { describe, expect, it } from 'vitest';
import { checkRateLimit, TokenBucket } from '@livemig/shared/control';

function bucket(ratePerSec: number, burst: number): { bucket: TokenBucket; advance: (ms: number) => void } {
  let now = 1000;
  return { bucket: new TokenBucket({ ratePerSec, burst }, () => now), advance: (ms) => (now += ms) };
}

/** How many takes succeed right now. */
function drain(b: TokenBucket): number {
  let taken = 0;
  while (b.take()) taken += 1;
  return taken;
}

describe('TokenBucket', () => {
  it('lets a burst through at once, then refuses until tokens come back at the rate', () => {
    const { bucket: b, advance } = bucket(10, 3);
    expect(drain(b)).toBe(3);
    expect(b.take()).toBe(false);
    expect(b.waitMs()).toBe(100);
    advance(99);
    expect(b.take()).toBe(false);
    advance(1);
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
  });

  it('sustains the rate over time, never more', () => {
    const { bucket: b, advance } = bucket(50, 5);
    let taken = drain(b);
    for (let ms = 0; ms < 2000; ms += 7) {
      advance(7);
      taken += drain(b);
    }
    // 5 at once, then 50/s for ~2 s.
    expect(taken).toBeGreaterThanOrEqual(5 + 99);
    expect(taken).toBeLessThanOrEqual(5 + 100);
  });

  it('saves up at most a burst while idle', () => {
    const { bucket: b, advance } = bucket(10, 4);
    drain(b);
    advance(60_000);
    expect(b.waitMs()).toBe(0);
    expect(drain(b)).toBe(4);
  });

  it('refuses a rate that is not positive and finite, and a burst that is not a whole number ≥ 1', () => {
    for (const limit of [
      { ratePerSec: 0, burst: 1 },
      { ratePerSec: -1, burst: 1 },
      { ratePerSec: Number.NaN, burst: 1 },
      { ratePerSec: Infinity, burst: 1 },
      { ratePerSec: 1, burst: 0 },
      { ratePerSec: 1, burst: 1.5 },
    ]) {
      expect(() => checkRateLimit(limit), JSON.stringify(limit)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
      expect(() => new TokenBucket(limit)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    expect(checkRateLimit({ ratePerSec: 0.5, burst: 1 })).toEqual({ ratePerSec: 0.5, burst: 1 });
  });
});
