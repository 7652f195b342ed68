import { describe, expect, it } from 'vitest';
import { GuestMemory, PAGE_SIZE } from '../../../../shared/src/vm/guest-memory.ts';
import { initialiseMemory, isInitZeroPage, parseInitSpec } from '../../../../shared/src/vm/init.ts';

const MiB = 1024 * 1024;

async function build(bytes: number, init: string, seed: number, regionBytes?: number): Promise<GuestMemory> {
  const memory = GuestMemory.allocate(bytes, regionBytes ? { regionBytes } : {});
  await initialiseMemory(memory, parseInitSpec(init), seed);
  return memory;
}

function equalPages(a: GuestMemory, b: GuestMemory, pages: number): boolean {
  for (let n = 0; n < pages; n++) if (Buffer.compare(a.page(n), b.page(n)) !== 0) return false;
  return true;
}

describe('initialiseMemory', () => {
  it('zero leaves memory zero and untouched', async () => {
    const memory = await build(MiB, 'zero', 1);
    expect(memory.touched.count).toBe(0);
    expect(memory.isZeroPage(0)).toBe(true);
  });

  it('random is deterministic from the seed and differs between seeds', async () => {
    const a = await build(2 * MiB, 'random', 7);
    const b = await build(2 * MiB, 'random', 7);
    const c = await build(2 * MiB, 'random', 8);
    expect(equalPages(a, b, a.pageCount)).toBe(true);
    expect(Buffer.compare(a.page(0), c.page(0))).not.toBe(0);
    expect(a.touched.count).toBe(a.pageCount);
    for (let n = 0; n < a.pageCount; n++) expect(a.isZeroPage(n)).toBe(false);
  });

  it('page n is the same whatever the VM size and region size', async () => {
    const small = await build(MiB, 'random', 3);
    const large = await build(4 * MiB, 'random', 3, MiB);
    expect(equalPages(small, large, small.pageCount)).toBe(true);
    const page300 = await build(2 * MiB, 'mixed:0.5', 3, 64 * 1024);
    const page300b = await build(2 * MiB, 'mixed:0.5', 3);
    expect(equalPages(page300, page300b, page300.pageCount)).toBe(true);
  });

  it('mixed:f makes about f of the pages zero, and touched is exactly the non-zero ones', async () => {
    const memory = await build(8 * MiB, 'mixed:0.25', 11);
    let zero = 0;
    for (let n = 0; n < memory.pageCount; n++) {
      const isZero = memory.isZeroPage(n);
      if (isZero) zero += 1;
      expect(isZero).toBe(!memory.touched.has(n));
      expect(isZero).toBe(isInitZeroPage(n, 11, 0.25));
    }
    expect(zero / memory.pageCount).toBeGreaterThan(0.2);
    expect(zero / memory.pageCount).toBeLessThan(0.3);
  });

  it('mixed:1 is all zero, mixed:0 all random', async () => {
    expect((await build(MiB, 'mixed:1', 1)).touched.count).toBe(0);
    expect((await build(MiB, 'mixed:0', 1)).touched.count).toBe(MiB / PAGE_SIZE);
  });
});

describe('parseInitSpec', () => {
  it('parses the three forms', () => {
    expect(parseInitSpec('zero')).toEqual({ kind: 'zero' });
    expect(parseInitSpec('Random')).toEqual({ kind: 'random' });
    expect(parseInitSpec('mixed:0.75')).toEqual({ kind: 'mixed', zeroFraction: 0.75 });
  });

  it.each(['', 'ones', 'mixed', 'mixed:', 'mixed:2', 'mixed:-0.1', 'mixed:x'])(
    'rejects "%s" with ERR_INVALID_INIT',
    (text) => {
      expect(() => parseInitSpec(text)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INIT' }));
    },
  );
});
