import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RoundBarrier, type ChannelCount, type ChannelMarker } from '../../../../shared/src/multifd/round-barrier.ts';

function count(pages: number, salt = ''): ChannelCount {
  return {
    pages,
    bytes: pages * 4096,
    pagesHash: `p${pages}${salt}`.padEnd(16, '0'),
    contentHash: `c${pages}${salt}`.padEnd(16, '0'),
  };
}

function marker(round: number, pages: number, stable = false, salt = ''): ChannelMarker {
  return { round, stable, ...count(pages, salt) };
}

describe('RoundBarrier', () => {
  it('completes a round exactly when the last of N channels arrives, in any arrival order, with the sum of their shares', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 8 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
              fc.array(fc.nat(5000), { minLength: n, maxLength: n }),
            ),
          ),
        ([n, order, sizes]) => {
          const barrier = new RoundBarrier(n);
          order.forEach((channel, k) => {
            const verdict = barrier.arrive(channel, marker(0, sizes[channel]!), count(sizes[channel]!));
            if (k < n - 1) {
              expect(verdict.status).toBe('pending');
              if (verdict.status === 'pending')
                expect(verdict.waiting).toEqual(order.slice(k + 1).sort((a, b) => a - b));
            } else {
              const total = sizes.reduce((a, b) => a + b, 0);
              expect(verdict).toEqual({
                status: 'complete',
                round: 0,
                pages: total,
                bytes: total * 4096,
                exact: true,
                changed: [],
              });
            }
          });
          expect(barrier.openRounds).toEqual([]);
        },
      ),
    );
  });

  it('keeps rounds apart when channels run ahead of each other', () => {
    const barrier = new RoundBarrier(2);
    expect(barrier.arrive(0, marker(0, 3), count(3)).status).toBe('pending');
    expect(barrier.arrive(0, marker(1, 4), count(4)).status).toBe('pending');
    expect(barrier.openRounds).toEqual([0, 1]);
    expect(barrier.arrive(1, marker(0, 5), count(5))).toMatchObject({ status: 'complete', round: 0, pages: 8 });
    expect(barrier.arrive(1, marker(1, 6), count(6))).toMatchObject({ status: 'complete', round: 1, pages: 10 });
  });

  it('refuses a share that did not arrive whole and once (pages, bytes or page numbers differ) with ERR_BAD_PAYLOAD, recording nothing', () => {
    const barrier = new RoundBarrier(2);
    expect(() => barrier.arrive(0, marker(0, 10), count(9))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_PAYLOAD' }),
    );
    expect(() => barrier.arrive(0, marker(0, 10), { ...count(10), bytes: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_PAYLOAD' }),
    );
    // Same count, another set of pages (one lost, one doubled): the page-number hash differs.
    expect(() => barrier.arrive(0, marker(0, 10), { ...count(10), pagesHash: 'ffffffffffffffff' })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_PAYLOAD' }),
    );
    expect(barrier.openRounds).toEqual([]);
    expect(barrier.arrive(0, marker(0, 10), count(10)).status).toBe('pending');
  });

  it('lets content differ in a live round (not exact, naming the channel) but not in a stable one (ERR_DIGEST_MISMATCH)', () => {
    const live = new RoundBarrier(2);
    live.arrive(0, marker(0, 2), count(2));
    expect(live.arrive(1, marker(0, 3), { ...count(3), contentHash: 'eeeeeeeeeeeeeeee' })).toMatchObject({
      status: 'complete',
      exact: false,
      changed: [1],
    });
    const stable = new RoundBarrier(2);
    expect(() => stable.arrive(1, marker(0, 3, true), { ...count(3), contentHash: 'eeeeeeeeeeeeeeee' })).toThrow(
      expect.objectContaining({ code: 'ERR_DIGEST_MISMATCH' }),
    );
  });

  it('refuses a second marker for a round, an older round, or a channel out of range (ERR_UNEXPECTED_MESSAGE)', () => {
    const barrier = new RoundBarrier(3);
    barrier.arrive(1, marker(2, 1), count(1));
    expect(() => barrier.arrive(1, marker(2, 1), count(1))).toThrow(
      expect.objectContaining({ code: 'ERR_UNEXPECTED_MESSAGE' }),
    );
    expect(() => barrier.arrive(1, marker(1, 1), count(1))).toThrow(
      expect.objectContaining({ code: 'ERR_UNEXPECTED_MESSAGE' }),
    );
    expect(() => barrier.arrive(3, marker(2, 1), count(1))).toThrow(
      expect.objectContaining({ code: 'ERR_UNEXPECTED_MESSAGE' }),
    );
    expect(() => barrier.arrive(-1, marker(2, 1), count(1))).toThrow(
      expect.objectContaining({ code: 'ERR_UNEXPECTED_MESSAGE' }),
    );
  });

  it('needs every channel: a round never completes while one channel is missing, whatever the others send', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.nat(7),
        fc.integer({ min: 1, max: 5 }),
        (n, missingSeed, rounds) => {
          const missing = missingSeed % n;
          const barrier = new RoundBarrier(n);
          for (let r = 0; r < rounds; r++) {
            for (let c = 0; c < n; c++)
              if (c !== missing) expect(barrier.arrive(c, marker(r, 1), count(1)).status).toBe('pending');
          }
          expect(barrier.openRounds).toHaveLength(rounds);
        },
      ),
    );
  });
});
