import { describe, expect, it } from 'vitest';
import { PageApplier } from '@livemig/shared/channel';
import { msg, PageKind, type PagesMeta } from '@livemig/shared/protocol';
import { GuestMemory, PAGE_SIZE } from '@livemig/shared/vm';

const MiB = 2 ** 20;
/** A Pages frame's metadata: raw pages `pages`. */
const meta = (pages: number[]): PagesMeta =>
  msg.pages({ round: 0, pages, kinds: new Array<number>(pages.length).fill(PageKind.Raw) });

describe('PageApplier', () => {
  it('writes pages into guest memory while attached', () => {
    const memory = GuestMemory.allocate(MiB);
    const applier = new PageApplier();
    applier.attach(memory);
    applier.pagesBegin(meta([3]));
    applier.pageBytes(0, 0, new Uint8Array(PAGE_SIZE).fill(7));
    applier.pagesEnd(meta([3]));
    expect(memory.page(3)[0]).toBe(7);
    expect(applier.pagesReceived).toBe(1);
  });

  it('lets go of the memory when it is released (a discarded VM), even mid-frame: later pages are refused, typed', () => {
    const memory = GuestMemory.allocate(MiB);
    const applier = new PageApplier();
    applier.attach(memory);
    applier.pagesBegin(meta([1, 2]));
    memory.release();
    expect(applier.maxRunPages).toBe(1);
    expect(() => applier.pageBytes(0, 0, new Uint8Array(PAGE_SIZE))).toThrow(
      expect.objectContaining({ code: 'ERR_VM_STATE' }),
    );
    expect(() => applier.pagesEnd(meta([1, 2]))).toThrow(expect.objectContaining({ code: 'ERR_VM_STATE' }));
    expect(() => applier.pagesBegin(meta([1]))).toThrow(expect.objectContaining({ code: 'ERR_UNEXPECTED_MESSAGE' }));
  });

  it('a release of memory it no longer writes to changes nothing', () => {
    const first = GuestMemory.allocate(MiB);
    const second = GuestMemory.allocate(MiB);
    const applier = new PageApplier();
    applier.attach(first);
    applier.attach(second);
    first.release();
    applier.pagesBegin(meta([0]));
    applier.pageBytes(0, 0, new Uint8Array(PAGE_SIZE).fill(1));
    applier.pagesEnd(meta([0]));
    expect(second.page(0)[0]).toBe(1);
  });
});
