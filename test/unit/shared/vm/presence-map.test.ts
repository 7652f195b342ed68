import { describe, expect, it } from 'vitest';
import { Bitmap } from '../../../../shared/src/vm/bitmap.ts';
import { PresenceMap } from '../../../../shared/src/vm/presence-map.ts';

describe('PresenceMap.markAllExcept', () => {
  it('marks every page not in the absent map, counts only pages that were absent, and never a bit past the last page', () => {
    const pageCount = 70; // two full words and a 6-bit tail
    const map = new PresenceMap(pageCount);
    map.mark(3); // already present: not counted again
    const absent = new Bitmap(pageCount);
    for (const n of [0, 31, 32, 69]) absent.set(n);
    const words = Uint32Array.from(absent.words);
    words[2] = words[2]! | 0xffffffc0; // garbage past page 69 (a hostile map): must not mark anything
    expect(map.markAllExcept(words)).toBe(pageCount - 4 - 1);
    expect(map.missing).toBe(4);
    for (let n = 0; n < pageCount; n++) expect(map.has(n)).toBe(![0, 31, 32, 69].includes(n));
    expect(map.words[2]! >>> 6).toBe(0);
    expect(map.markAllExcept(words)).toBe(0);
    expect(map.missing).toBe(4);
  });

  it('an all-absent map marks nothing; an empty one marks everything', () => {
    const map = new PresenceMap(64);
    const all = new Bitmap(64);
    all.setAll();
    expect(map.markAllExcept(all.words)).toBe(0);
    expect(map.missing).toBe(64);
    expect(map.markAllExcept(new Bitmap(64).words)).toBe(64);
    expect(map.missing).toBe(0);
  });
});
