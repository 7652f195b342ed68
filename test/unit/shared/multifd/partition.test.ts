import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_BATCH_PAGES, MAX_CHANNELS, partitionRound } from '../../../../shared/src/multifd/partition.ts';

const pageLists = fc.array(fc.nat({ max: 1 << 20 }), { maxLength: 3000 }).map((a) => Uint32Array.from(a));
const channelCounts = fc.integer({ min: 1, max: MAX_CHANNELS });
const batchSizes = fc.integer({ min: 1, max: 300 });
const modes = fc.constantFrom('batches' as const, 'stripes' as const);

/** Multiset of the entries. */
function counts(list: Iterable<number>): Map<number, number> {
  const map = new Map<number, number>();
  for (const n of list) map.set(n, (map.get(n) ?? 0) + 1);
  return map;
}

describe('partitionRound', () => {
  it('puts every entry of any page list in exactly one share, once per occurrence (no page lost or doubled), for any N 1..8', () => {
    fc.assert(
      fc.property(pageLists, channelCounts, batchSizes, modes, (pages, channels, batchPages, mode) => {
        const shares = partitionRound(pages, channels, { batchPages, mode });
        expect(shares).toHaveLength(channels);
        const all = shares.flatMap((share) => [...share]);
        expect(all).toHaveLength(pages.length);
        expect(counts(all)).toEqual(counts(pages));
      }),
    );
  });

  it('keeps the list order inside each share and deals whole batches (each batch is one consecutive slice of the list)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        channelCounts,
        batchSizes,
        modes,
        (length, channels, batchPages, mode) => {
          // Entries equal to their index: order and batch boundaries are visible in the values.
          const pages = Uint32Array.from({ length }, (_, i) => i);
          const shares = partitionRound(pages, channels, { batchPages, mode });
          const bad: string[] = [];
          for (const share of shares) {
            for (let i = 1; i < share.length; i++) {
              if (share[i]! <= share[i - 1]!) bad.push(`${share[i - 1]} then ${share[i]}: out of order`);
              // A jump inside a share starts a new batch: at a batch boundary of the round.
              else if (share[i] !== share[i - 1]! + 1 && share[i]! % batchPages !== 0)
                bad.push(`a batch split at ${share[i]}`);
            }
          }
          expect(bad).toEqual([]);
        },
      ),
    );
  });

  it('balances: batches mode gives each channel within one batch of the others; stripes within one batch too', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        channelCounts,
        batchSizes,
        modes,
        (length, channels, batchPages, mode) => {
          const shares = partitionRound(new Uint32Array(length), channels, { batchPages, mode });
          const sizes = shares.map((s) => s.length);
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(batchPages);
        },
      ),
    );
  });

  it('round-robin deals batch k to channel k mod N; stripes give channel i one contiguous range', () => {
    const pages = Uint32Array.from({ length: 10 }, (_, i) => i);
    expect(partitionRound(pages, 3, { batchPages: 2 }).map((s) => [...s])).toEqual([
      [0, 1, 6, 7],
      [2, 3, 8, 9],
      [4, 5],
    ]);
    expect(partitionRound(pages, 3, { batchPages: 2, mode: 'stripes' }).map((s) => [...s])).toEqual([
      [0, 1],
      [2, 3, 4, 5],
      [6, 7, 8, 9],
    ]);
  });

  it('continues dealing where a previous part of the round stopped (firstChannel): parts dealt one after another equal the whole round dealt at once', () => {
    fc.assert(
      fc.property(pageLists, fc.nat(3000), channelCounts, batchSizes, (pages, cutSeed, channels, batchPages) => {
        // Cut the round at a batch boundary into two parts, the second dealt from where the first stopped.
        const cut = Math.min(pages.length, Math.floor(cutSeed / batchPages) * batchPages);
        const first = partitionRound(pages.subarray(0, cut), channels, { batchPages });
        const next = (Math.ceil(cut / batchPages) % channels) as number;
        const second = partitionRound(pages.subarray(cut), channels, { batchPages, firstChannel: next });
        const whole = partitionRound(pages, channels, { batchPages });
        expect(first.map((share, i) => [...share, ...second[i]!])).toEqual(whole.map((share) => [...share]));
      }),
    );
    expect(() => partitionRound(new Uint32Array(4), 2, { firstChannel: 2 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('gives every channel a share, empty ones included (each still ends the round with its marker)', () => {
    const shares = partitionRound(Uint32Array.of(7), 4);
    expect(shares.map((s) => s.length)).toEqual([1, 0, 0, 0]);
  });

  it('copies: the shares do not change when the caller reuses its list', () => {
    const pages = Uint32Array.of(1, 2, 3);
    const [share] = partitionRound(pages, 1);
    pages.fill(0);
    expect([...share!]).toEqual([1, 2, 3]);
  });

  it('refuses channel counts outside 1..8 and batch sizes outside 1..MAX_BATCH_PAGES with ERR_INVALID_ARGUMENT', () => {
    for (const channels of [0, 9, 1.5, NaN]) {
      expect(() => partitionRound(new Uint32Array(4), channels)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
    }
    for (const batchPages of [0, MAX_BATCH_PAGES + 1, 2.5]) {
      expect(() => partitionRound(new Uint32Array(4), 2, { batchPages })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
    }
  });
});
