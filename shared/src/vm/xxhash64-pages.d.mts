/** Types of xxhash64-pages.mjs (plain JavaScript, so worker threads load it without a loader). */
export declare const PAGE_BYTES: 4096;
export declare const BATCH_PAGES: number;
export declare const HASH_BYTES: 8;

export interface PageHasher {
  /**
   * Hash pages 0..count−1, page i's bytes read through `page(i)`; `into(i, hashes, at)` gets page
   * i's 8-byte hash at hashes[at..at+8] (overwritten by the next call: copy what you keep).
   */
  hashPages(
    count: number,
    page: (i: number) => Uint8Array,
    into: (i: number, hashes: Uint8Array, at: number) => void,
  ): void;
  /** One page's hash (a new 8-byte array). */
  hashPage(bytes: Uint8Array): Uint8Array;
}

export declare function createPageHasher(): PageHasher;
