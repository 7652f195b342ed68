/**
 * The destination's applier with host content (dedup-host): a reference at or past the page count
 * copies that entry of the table this side offered — into memory and into the digest — and a
 * reference to an entry it did not offer is refused (ERR_BAD_ENCODING), the page untouched.
 */
import { describe, expect, it } from 'vitest';
import { PageApplier } from '@livemig/shared/channel';
import { buildHostContent, type HostContentTable } from '@livemig/shared/codec';
import { encodePages, FrameDecoder, PageKind, type PagesBatch } from '@livemig/shared/protocol';
import { digestMemory, GuestMemory, PAGE_SIZE } from '@livemig/shared/vm';

const MiB = 2 ** 20;
const PAGES = MiB / PAGE_SIZE;

/** A page of `byte`s with its number stamped, so no two are alike. */
function page(byte: number, n: number): Uint8Array {
  const bytes = new Uint8Array(PAGE_SIZE).fill(byte);
  new DataView(bytes.buffer).setUint32(0, n);
  return bytes;
}

/** Another VM's memory holding these contents, and the table built from it. */
function tableOf(contents: Uint8Array[]): HostContentTable {
  const other = GuestMemory.allocate(MiB);
  contents.forEach((bytes, n) => other.writePage(n, bytes));
  return buildHostContent([other], PAGE_SIZE, { maxPages: 64, maxScanPages: 1024, timeBudgetMs: 60_000 });
}

function receiver(table: HostContentTable | undefined) {
  const memory = GuestMemory.allocate(MiB);
  const applier = new PageApplier();
  applier.attach(memory);
  applier.encodings = { delta: false, dedup: true, compress: false };
  applier.hostContent = table;
  const decoder = new FrameDecoder({ sink: applier, pageCount: PAGES, role: 'dest' });
  const refer = (pages: number[], refs: number[]): void => {
    const batch: PagesBatch = {
      round: 0,
      pages: Uint32Array.from(pages),
      kinds: new Uint8Array(pages.length).fill(PageKind.Dedup),
      refs: Uint32Array.from(refs),
    };
    for (const frame of encodePages(batch, [])) decoder.push(frame);
  };
  return { memory, applier, refer };
}

describe('PageApplier: references to host content', () => {
  it('copies entry k for the reference pageCount + k, into memory and the digest', async () => {
    const contents = [page(1, 0), page(2, 1), page(3, 2)];
    const table = tableOf(contents);
    expect(table.count).toBe(3);
    const r = receiver(table);
    r.refer([10, 20], [PAGES + 2, PAGES]);
    expect(Buffer.compare(r.memory.page(10), table.entry(2)!)).toBe(0);
    expect(Buffer.compare(r.memory.page(20), table.entry(0)!)).toBe(0);
    expect(r.applier.hostReferences).toBe(2);
    expect(r.applier.digest()).toBe(await digestMemory(r.memory));
    // The page now holds that content here: a later reference to the page itself is good too.
    r.refer([30], [10]);
    expect(Buffer.compare(r.memory.page(30), table.entry(2)!)).toBe(0);
  });

  it('refuses an entry it did not offer, and a host reference when it offered none', () => {
    const r = receiver(tableOf([page(4, 0)]));
    r.memory.writePage(7, page(9, 7));
    expect(() => r.refer([7], [PAGES + 1])).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_ENCODING', message: expect.stringContaining('host content 1') }),
    );
    expect(Buffer.compare(r.memory.page(7), page(9, 7))).toBe(0);
    const none = receiver(undefined);
    expect(() => none.refer([7], [PAGES])).toThrow(expect.objectContaining({ code: 'ERR_BAD_ENCODING' }));
  });

  it('lets the table go with the memory (a discarded VM)', () => {
    const r = receiver(tableOf([page(5, 0)]));
    r.memory.release();
    expect(r.applier.hostContent).toBeUndefined();
  });
});
