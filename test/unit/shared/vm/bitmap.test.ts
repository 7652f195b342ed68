import { describe, expect, it } from 'vitest';
import { Bitmap, popcount32 } from '../../../../shared/src/vm/bitmap.ts';
import { unionSorted } from '../../../../shared/src/vm/page-list.ts';

describe('Bitmap', () => {
  it('sets, clears, counts and lists bits', () => {
    const b = new Bitmap(70);
    for (const n of [0, 31, 32, 69]) b.set(n);
    b.set(31);
    expect(b.count).toBe(4);
    expect(b.has(31)).toBe(true);
    expect(b.has(30)).toBe(false);
    b.clear(31);
    expect([...b.toPageList()]).toEqual([0, 32, 69]);
    const seen: number[] = [];
    b.forEach((n) => seen.push(n));
    expect(seen).toEqual([0, 32, 69]);
  });

  it('finds the next set bit across empty words', () => {
    const b = new Bitmap(200);
    b.set(3);
    b.set(150);
    expect(b.nextSet(0)).toBe(3);
    expect(b.nextSet(3)).toBe(3);
    expect(b.nextSet(4)).toBe(150);
    expect(b.nextSet(151)).toBe(-1);
    expect(b.nextSet(500)).toBe(-1);
  });

  it('setAll sets exactly size bits', () => {
    const b = new Bitmap(37);
    b.setAll();
    expect(b.count).toBe(37);
    expect(b.nextSet(36)).toBe(36);
    expect(b.has(37)).toBe(false);
  });

  it('round-trips through bytes and rejects a wrong length', () => {
    const b = new Bitmap(100);
    b.set(1);
    b.set(99);
    const copy = Bitmap.fromBytes(b.bytes(), 100);
    expect([...copy.toPageList()]).toEqual([1, 99]);
    expect(() => Bitmap.fromBytes(new Uint8Array(3), 100)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('ORs words in and clones independently', () => {
    const a = new Bitmap(64);
    a.orWords(new Int32Array([1 << 31, 1]));
    expect([...a.toPageList()]).toEqual([31, 32]);
    const c = a.clone();
    c.set(0);
    expect(a.has(0)).toBe(false);
  });

  it('popcount32 counts bits of any 32-bit word', () => {
    expect(popcount32(0)).toBe(0);
    expect(popcount32(-1)).toBe(32);
    expect(popcount32(0x80000001)).toBe(2);
    expect(popcount32(0x0f0f0f0f)).toBe(16);
  });
});

describe('unionSorted', () => {
  it('merges ascending lists without duplicates', () => {
    expect([...unionSorted(new Uint32Array([1, 4, 9]), new Uint32Array([0, 4, 10]))]).toEqual([0, 1, 4, 9, 10]);
    expect([...unionSorted(new Uint32Array([]), new Uint32Array([2]))]).toEqual([2]);
  });
});
