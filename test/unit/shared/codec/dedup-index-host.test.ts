/**
 * Host content in the dedup index (dedup-host): pinned contents answer with their reference
 * (pageCount + k) before any page of the VM, are never evicted and never dropped by a page's
 * change, are counted apart, and fit u32 references; page hashes convert to the 32 raw bytes
 * SetupDone carries and back.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DedupIndex,
  PAGE_HASH_BYTES,
  pageHash,
  pageHashBytes,
  pageHashOfBytes,
} from '../../../../shared/src/codec/dedup-index.ts';
import { makePage } from './arbitraries.ts';

const PAGES = 1000;

describe('page hashes as bytes', () => {
  it('are the raw SHA-256 digest, and convert back', () => {
    const page = makePage('text', 3);
    const raw = pageHashBytes(pageHash(page));
    expect(raw).toHaveLength(PAGE_HASH_BYTES);
    expect(Buffer.compare(raw, createHash('sha256').update(page).digest())).toBe(0);
    expect(pageHashOfBytes(raw)).toBe(pageHash(page));
    // A view into a larger buffer (SetupDone's payload) reads only its 32 bytes.
    const payload = Buffer.concat([Buffer.alloc(32, 1), raw, Buffer.alloc(32, 2)]);
    expect(pageHashOfBytes(payload.subarray(32, 64))).toBe(pageHash(page));
  });

  it('refuses a digest of another length', () => {
    expect(() => pageHashOfBytes(new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('DedupIndex host content', () => {
  const lib = pageHash(makePage('text', 1));
  const cache = pageHash(makePage('pattern', 2));
  const own = pageHash(makePage('random', 3));

  it('answers with the reference pageCount + k, before a page of the VM with the same content', () => {
    const index = new DedupIndex();
    index.addHost([lib, cache], PAGES);
    expect(index.find(lib)).toBe(PAGES);
    expect(index.find(cache)).toBe(PAGES + 1);
    // A page sent with that content does not take it over: the host entry never changes.
    index.sent(5, lib);
    expect(index.find(lib)).toBe(PAGES);
    index.sent(6, own);
    expect(index.find(own)).toBe(6);
    expect(index.host).toEqual({ entries: 2, hits: 3 });
    expect(index.stats).toMatchObject({ lookups: 4, hits: 4 });
  });

  it('never evicts or forgets host content; clear() does (a new migration)', () => {
    const index = new DedupIndex({ maxEntries: 2 });
    index.addHost([lib], PAGES);
    for (let page = 0; page < 10; page++) index.sent(page, pageHash(makePage('random', 100 + page)));
    expect(index.size).toBe(2); // the LRU bound is for pages only
    expect(index.stats.evictions).toBe(8);
    index.sent(0, lib);
    index.forget(0);
    expect(index.find(lib)).toBe(PAGES);
    index.clear();
    expect(index.find(lib)).toBeUndefined();
    expect(index.host.entries).toBe(0);
  });

  it('keeps the first reference of a content listed twice', () => {
    const index = new DedupIndex();
    index.addHost([lib, lib, cache], PAGES);
    expect(index.find(lib)).toBe(PAGES);
    expect(index.find(cache)).toBe(PAGES + 2);
    expect(index.host.entries).toBe(2);
  });

  it('refuses references that would not fit u32 page numbers', () => {
    const index = new DedupIndex();
    expect(() => index.addHost([lib, cache], 0xffff_ffff)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    index.addHost([lib], 0xffff_ffff);
    expect(index.find(lib)).toBe(0xffff_ffff);
  });
});
