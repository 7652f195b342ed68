/**
 * The PageApplier in post-copy (`wanted` set): a raw page is installed — hashed into the ledger,
 * then handed to onPage, which lets the guest have it — as soon as its last byte arrived, not at
 * the end of its batch; a page a read cut in two is claimed only once whole; each page once.
 */
import { describe, expect, it } from 'vitest';
import { PageApplier } from '@livemig/shared/channel';
import { msg, PageKind, type PagesMeta } from '@livemig/shared/protocol';
import { GuestMemory, PageDigestLedger, PAGE_SIZE } from '@livemig/shared/vm';

const MiB = 2 ** 20;
const meta = (pages: number[]): PagesMeta =>
  msg.pages({ round: 0, requestId: 0, pages, kinds: new Array<number>(pages.length).fill(PageKind.Raw) });

/** An applier in post-copy over fresh memory: present pages are not wanted; onPage marks them. */
function postcopyApplier() {
  const memory = GuestMemory.allocate(MiB);
  const ledger = new PageDigestLedger(memory.pageCount);
  const applier = new PageApplier();
  applier.attach(memory, ledger);
  const present = new Set<number>();
  const installed: number[] = [];
  /** The ledger's digest as each page was handed over. */
  const digestAt = new Map<number, string>();
  applier.wanted = (page) => !present.has(page);
  applier.onPage = (page) => {
    present.add(page);
    installed.push(page);
    digestAt.set(page, ledger.digest());
  };
  return { memory, ledger, applier, installed, digestAt };
}

describe('PageApplier in post-copy', () => {
  it('installs each raw page as its last byte comes, before the batch ends; each page once', () => {
    const { memory, ledger, applier, installed, digestAt } = postcopyApplier();
    const batch = meta([5, 6, 9]);
    applier.pagesBegin(batch);
    // Page 5 in two parts, then 6 and half of 9.
    applier.pageBytes(0, 0, new Uint8Array(PAGE_SIZE / 2).fill(1));
    expect(installed).toEqual([]);
    applier.pageBytes(0, PAGE_SIZE / 2, new Uint8Array(PAGE_SIZE / 2).fill(1));
    expect(installed).toEqual([5]);
    // Hashed into the ledger before the guest could have it.
    const expected = new PageDigestLedger(memory.pageCount);
    expected.update(5, new Uint8Array(PAGE_SIZE).fill(1));
    expect(digestAt.get(5)).toBe(expected.digest());
    applier.pageBytes(1, 0, new Uint8Array(PAGE_SIZE + PAGE_SIZE / 2).fill(2));
    expect(installed).toEqual([5, 6]);
    applier.pageBytes(2, PAGE_SIZE / 2, new Uint8Array(PAGE_SIZE / 2).fill(2));
    expect(installed).toEqual([5, 6, 9]);
    applier.pagesEnd(batch);
    expect(installed).toEqual([5, 6, 9]);
    expect(applier.rawPagesReceived).toBe(3);
    expected.update(6, memory.page(6));
    expected.update(9, memory.page(9));
    expect(ledger.digest()).toBe(expected.digest());
  });

  it('claims a page cut across two reads only once it is whole: meanwhile the other writer may install it', () => {
    const { memory, applier, installed } = postcopyApplier();
    const asked: number[] = [];
    const wanted = applier.wanted!;
    applier.wanted = (page) => (asked.push(page), wanted(page));
    applier.pagesBegin(meta([8]));
    applier.pageBytes(0, 0, new Uint8Array(100).fill(4));
    expect(asked, 'no claim on a partial page').toEqual([]);
    expect(memory.page(8)[0], 'nor a byte written').toBe(0);
    // The other writer (the fault thread) installs page 8 meanwhile; this copy is dropped.
    applier.onPage!(8);
    installed.length = 0;
    applier.pageBytes(0, 100, new Uint8Array(PAGE_SIZE - 100).fill(4));
    applier.pagesEnd(meta([8]));
    expect(asked).toContain(8);
    expect(installed).toEqual([]);
    expect(memory.page(8)[0]).toBe(0);
  });

  it('a page present already is neither written nor installed again', () => {
    const { memory, applier, installed } = postcopyApplier();
    applier.onPage!(4); // present (installed by another writer)
    installed.length = 0;
    applier.pagesBegin(meta([4]));
    applier.pageBytes(0, 0, new Uint8Array(PAGE_SIZE).fill(3));
    applier.pagesEnd(meta([4]));
    expect(installed).toEqual([]);
    expect(memory.page(4)[0]).toBe(0);
  });
});
