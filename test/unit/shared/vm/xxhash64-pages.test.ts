/**
 * The batch page hasher (xxhash64-pages.mjs) is XXH64 exactly: on random pages, the zero page and
 * pages differing in one bit, in batches that span its BATCH_PAGES, it gives hash-wasm's
 * createXXHash64 value, canonical 8-byte form — so the memory digest keeps its definition.
 */
import { randomFillSync } from 'node:crypto';
import { createXXHash64 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { BATCH_PAGES, createPageHasher, HASH_BYTES, PAGE_BYTES } from '../../../../shared/src/vm/xxhash64-pages.mjs';

const reference = await createXXHash64();
function xxh64(bytes: Uint8Array): string {
  reference.init();
  reference.update(bytes);
  return reference.digest('hex');
}

describe('createPageHasher', () => {
  it('hashes every page as XXH64 does, across batches', () => {
    const count = BATCH_PAGES * 2 + 37;
    const memory = new Uint8Array(count * PAGE_BYTES);
    randomFillSync(memory);
    memory.fill(0, 5 * PAGE_BYTES, 6 * PAGE_BYTES); // a zero page
    memory.copyWithin(7 * PAGE_BYTES, 6 * PAGE_BYTES, 7 * PAGE_BYTES); // page 7: page 6 …
    memory[7 * PAGE_BYTES + 100]! ^= 1; // … with one bit flipped
    const got: string[] = [];
    createPageHasher().hashPages(
      count,
      (i: number) => memory.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES),
      (i: number, hashes: Uint8Array, at: number) => {
        got[i] = Buffer.from(hashes.subarray(at, at + HASH_BYTES)).toString('hex');
      },
    );
    const want = Array.from({ length: count }, (_, i) => xxh64(memory.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)));
    expect(got).toEqual(want);
    expect(got[6]).not.toBe(got[7]);
  });

  it('hashes one page, and refuses an input that is not a page', () => {
    const hasher = createPageHasher();
    const zero = new Uint8Array(PAGE_BYTES);
    expect(Buffer.from(hasher.hashPage(zero)).toString('hex')).toBe(xxh64(zero));
    expect(() => hasher.hashPage(new Uint8Array(100))).toThrow(RangeError);
  });
});
