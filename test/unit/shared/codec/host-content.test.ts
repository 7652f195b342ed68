/**
 * The destination's host content table (dedup-host): built from other VMs' memory, it offers the
 * contents seen most often first, skips zero pages, keeps within its entry, scan and time bounds,
 * and holds a snapshot — an entry keeps its bytes, and its hash names exactly them, whatever the
 * VM writes afterwards.
 */
import { describe, expect, it } from 'vitest';
import {
  buildHostContent,
  HostContentTable,
  PAGE_HASH_BYTES,
  pageHash,
  pageHashOfBytes,
} from '../../../../shared/src/codec/index.ts';
import { GuestMemory } from '../../../../shared/src/vm/index.ts';
import { PAGE, makePage } from './arbitraries.ts';

const MiB = 2 ** 20;
const NO_LIMIT = { maxPages: 16_384, maxScanPages: 1 << 20, timeBudgetMs: 60_000 };

/** A memory whose page n holds `contents[n]` (undefined: never written). */
function memoryOf(contents: (Uint8Array | undefined)[]): GuestMemory {
  const memory = GuestMemory.allocate(MiB);
  contents.forEach((bytes, page) => {
    if (bytes) memory.writePage(page, bytes);
  });
  return memory;
}

/** The hashes the table offers, as page hashes, in entry order. */
function offered(table: HostContentTable): string[] {
  const out: string[] = [];
  for (let k = 0; k < table.count; k++) {
    out.push(pageHashOfBytes(table.hashes.subarray(k * PAGE_HASH_BYTES, (k + 1) * PAGE_HASH_BYTES)));
  }
  return out;
}

describe('buildHostContent', () => {
  it('offers every distinct non-zero content, the repeated ones first, each entry holding the bytes its hash names', () => {
    const lib = makePage('text', 1); // in both VMs, three times
    const cache = makePage('pattern', 2); // twice in one VM
    const once = makePage('random', 3);
    const a = memoryOf([lib, once, cache, new Uint8Array(PAGE), lib]);
    const b = memoryOf([cache, lib]);
    const table = buildHostContent([a, b], PAGE, NO_LIMIT);
    expect(offered(table)).toEqual([pageHash(lib), pageHash(cache), pageHash(once)]);
    for (let k = 0; k < table.count; k++) expect(pageHash(table.entry(k)!)).toBe(offered(table)[k]);
    expect(table.figures).toMatchObject({ distinct: 3, repeated: 2, outOfTime: false });
    // A page written with zeros is hashed nowhere: zero pages travel as zero records.
    expect(offered(table)).not.toContain(pageHash(new Uint8Array(PAGE)));
    expect(table.bytes).toBe(3 * (PAGE + PAGE_HASH_BYTES));
  });

  it('offers only contents seen at least minSeen times', () => {
    const lib = makePage('text', 21);
    const a = memoryOf([lib, makePage('random', 22)]);
    const b = memoryOf([makePage('random', 23), lib]);
    const table = buildHostContent([a, b], PAGE, { ...NO_LIMIT, minSeen: 2 });
    expect(offered(table)).toEqual([pageHash(lib)]);
    expect(table.figures).toMatchObject({ distinct: 3, repeated: 1 });
  });

  it('is a snapshot: a VM writing its pages afterwards changes no entry', () => {
    const lib = makePage('text', 7);
    const memory = memoryOf([lib, lib]);
    const table = buildHostContent([memory], PAGE, NO_LIMIT);
    memory.page(0).fill(0xee);
    memory.page(1).fill(0xee);
    expect(table.count).toBe(1);
    expect(Buffer.compare(table.entry(0)!, lib)).toBe(0);
  });

  it('keeps to its bounds: entries, pages scanned (spread over every VM), and time', () => {
    const contents = Array.from({ length: 200 }, (_, i) => makePage('random', 100 + i));
    const a = memoryOf(contents.slice(0, 100));
    const b = memoryOf(contents.slice(100));
    expect(buildHostContent([a, b], PAGE, { ...NO_LIMIT, maxPages: 10 }).count).toBe(10);
    const sampled = buildHostContent([a, b], PAGE, { ...NO_LIMIT, maxScanPages: 50 });
    expect(sampled.figures.scanned).toBe(50);
    // One page in four of 200, from both VMs, not the first 50 of the first.
    const fromB = new Set(contents.slice(100).map((c) => pageHash(c)));
    expect(offered(sampled).filter((h) => fromB.has(h)).length).toBeGreaterThan(20);
    const late = buildHostContent([a, b], PAGE, { ...NO_LIMIT, timeBudgetMs: -1 });
    expect(late.figures.outOfTime).toBe(true);
    expect(late.count).toBe(0);
  });

  it('offers nothing without other VMs, with no room, or from released memory', () => {
    const memory = memoryOf([makePage('text', 9)]);
    expect(buildHostContent([], PAGE, NO_LIMIT).count).toBe(0);
    expect(buildHostContent([memory], PAGE, { ...NO_LIMIT, maxPages: 0 }).count).toBe(0);
    memory.release();
    expect(buildHostContent([memory], PAGE, NO_LIMIT).count).toBe(0);
  });
});

describe('HostContentTable', () => {
  it('answers only for the entries it has', () => {
    const table = buildHostContent([memoryOf([makePage('text', 11)])], PAGE, NO_LIMIT);
    expect(table.entry(0)).toHaveLength(PAGE);
    for (const k of [-1, 1, 0.5, Number.NaN]) expect(table.entry(k)).toBeUndefined();
    expect(HostContentTable.empty(PAGE).entry(0)).toBeUndefined();
  });

  it('refuses pages and hashes that do not match', () => {
    expect(
      () => new HostContentTable(PAGE, new Uint8Array(PAGE), new Uint8Array(31), HostContentTable.empty(PAGE).figures),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});
