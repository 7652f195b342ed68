import { describe, expect, it } from 'vitest';
import { GuestMemory, PAGE_SIZE, checkMemoryBytes } from '../../../../shared/src/vm/guest-memory.ts';

const MiB = 1024 * 1024;

describe('GuestMemory', () => {
  it('addresses pages globally across regions', () => {
    const memory = GuestMemory.allocate(3 * MiB, { regionBytes: MiB });
    expect(memory.regions.length).toBe(3);
    expect(memory.pageCount).toBe(768);
    memory.page(256)[0] = 7; // first page of region 1
    memory.page(767)[PAGE_SIZE - 1] = 9; // last byte of the VM
    expect(memory.region(1)[0]).toBe(7);
    expect(memory.region(2)[MiB - 1]).toBe(9);
  });

  it('gives views, not copies', () => {
    const memory = GuestMemory.allocate(MiB);
    const view = memory.page(3);
    memory.region(0)[3 * PAGE_SIZE + 5] = 42;
    expect(view[5]).toBe(42);
    expect(view.length).toBe(PAGE_SIZE);
  });

  it('writes pages and marks them touched', () => {
    const memory = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    const src = new Uint8Array(PAGE_SIZE).fill(0xab);
    memory.writePage(300, src);
    expect(memory.page(300).every((b) => b === 0xab)).toBe(true);
    expect([...memory.touched.toPageList()]).toEqual([300]);
    expect(() => memory.writePage(1, new Uint8Array(10))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('markTouched() records a page written through a view, as writePage() would', () => {
    const memory = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    // A page applier receives a run of pages straight into a region view, bypassing writePage().
    memory.pageRun(255, 2).fill(0xcd); // pages 255 and 256 (the run is cut at the region end)
    expect(memory.touched.count).toBe(0); // nothing marked them: they would be skipped as zero
    memory.markTouched(255);
    expect([...memory.touched.toPageList()]).toEqual([255]);
    memory.pageRun(256, 2).fill(0xcd);
    memory.markTouched(256);
    memory.markTouched(257);
    memory.markTouched(257); // idempotent
    expect([...memory.touched.toPageList()]).toEqual([255, 256, 257]);
    for (const n of [-1, 512, 2.5]) {
      expect(() => memory.markTouched(n)).toThrow(expect.objectContaining({ code: 'ERR_PAGE_OUT_OF_RANGE' }));
    }
  });

  it('release() drops the regions, tells its listeners once, and refuses every later access', () => {
    const memory = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    const calls: string[] = [];
    memory.onRelease(() => calls.push('a'));
    const off = memory.onRelease(() => calls.push('b'));
    off();
    expect(memory.released).toBe(false);
    memory.release();
    memory.release(); // idempotent
    expect(calls).toEqual(['a']);
    expect(memory.released).toBe(true);
    expect(memory.regions).toEqual([]);
    const released = expect.objectContaining({ code: 'ERR_VM_STATE' });
    expect(() => memory.page(0)).toThrow(released);
    expect(() => memory.pageRun(0, 1)).toThrow(released);
    expect(() => memory.region(0)).toThrow(released);
    expect(() => memory.isZeroPage(0)).toThrow(released);
    expect(() => memory.writePage(0, new Uint8Array(PAGE_SIZE))).toThrow(released);
    memory.onRelease(() => calls.push('late')); // already released: told at once
    expect(calls).toEqual(['a', 'late']);
  });

  it('tells zero pages from non-zero ones, wherever the non-zero byte is', () => {
    const memory = GuestMemory.allocate(MiB);
    expect(memory.isZeroPage(10)).toBe(true);
    memory.page(10)[0] = 1; // caught by the first-8-words check
    memory.page(11)[PAGE_SIZE - 1] = 1; // only the native compare sees it
    expect(memory.isZeroPage(10)).toBe(false);
    expect(memory.isZeroPage(11)).toBe(false);
    expect(memory.isZeroPage(12)).toBe(true);
  });

  it('cuts page runs at region ends', () => {
    const memory = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    expect(memory.pageRun(250, 100).length).toBe(6 * PAGE_SIZE);
    expect(memory.pageRun(256, 4).length).toBe(4 * PAGE_SIZE);
  });

  it('rejects pages outside the VM', () => {
    const memory = GuestMemory.allocate(MiB);
    for (const n of [-1, 256, 1.5]) {
      expect(() => memory.page(n)).toThrow(expect.objectContaining({ code: 'ERR_PAGE_OUT_OF_RANGE' }));
    }
  });

  it('accepts 1 MiB..16 GiB in whole pages only', () => {
    expect(() => checkMemoryBytes(MiB)).not.toThrow();
    expect(() => checkMemoryBytes(16 * 1024 * MiB)).not.toThrow();
    for (const bad of [MiB - PAGE_SIZE, 16 * 1024 * MiB + PAGE_SIZE, MiB + 1, NaN]) {
      expect(() => checkMemoryBytes(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_SIZE' }));
    }
  });

  it('allocates a 16 GiB VM as 16 lazily backed 1 GiB regions', () => {
    const memory = GuestMemory.allocate(16 * 1024 * MiB);
    expect(memory.regions.length).toBe(16);
    expect(memory.pageCount).toBe(4 * 1024 * 1024);
    memory.page(memory.pageCount - 1)[0] = 1;
    expect(memory.isZeroPage(memory.pageCount - 1)).toBe(false);
  });
});
