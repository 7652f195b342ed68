import { describe, expect, it } from 'vitest';
import { Bitmap } from '@livemig/shared/vm';
import { absentAtSwitchover } from '../../../agent-source/src/migration/sections/ram/absent-map.ts';

const list = (...pages: number[]): Uint32Array => Uint32Array.from(pages);

function nonZero(size: number, pages: number[]): Bitmap {
  const b = new Bitmap(size);
  for (const p of pages) b.set(p);
  return b;
}

describe('absentAtSwitchover', () => {
  it.each([
    [
      'nothing sent (pure post-copy): every possibly non-zero page, whatever the lists say',
      {
        nothingSent: true,
        possiblyNonZero: nonZero(64, [1, 2, 40]),
        unsentOfRound: list(1),
        dirty: list(),
        harvested: list(63),
      },
      [1, 2, 40],
    ],
    [
      'after rounds: the rest of the round ∪ dirty ∪ the final harvest',
      {
        nothingSent: false,
        possiblyNonZero: nonZero(64, [0, 1, 2, 3, 4, 5]),
        unsentOfRound: list(4, 5),
        dirty: list(1),
        harvested: list(1, 3),
      },
      [1, 3, 4, 5],
    ],
    [
      'after a round that finished with nothing dirty: nothing absent',
      {
        nothingSent: false,
        possiblyNonZero: nonZero(64, [7]),
        unsentOfRound: list(),
        dirty: list(),
        harvested: list(),
      },
      [],
    ],
  ] as const)('%s', (_what, input, expected) => {
    const absent = absentAtSwitchover({ pageCount: 64, ...input });
    expect([...absent.toPageList()]).toEqual(expected);
  });

  it('returns a copy: changing it leaves the live map alone', () => {
    const live = nonZero(64, [9]);
    const absent = absentAtSwitchover({
      pageCount: 64,
      nothingSent: true,
      possiblyNonZero: live,
      unsentOfRound: list(),
      dirty: list(),
      harvested: list(),
    });
    absent.clear(9);
    expect(live.has(9)).toBe(true);
  });
});
