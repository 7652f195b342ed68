/** Types of digest-pages.mjs (plain JavaScript, so the digest worker runs it without a loader). */

/** Bytes of one page hash. */
export declare const HASH_BYTES: 8;

/** The page hash (XXH64 of a 4 KiB page, canonical form), batch by batch: xxhash64-pages.mjs. */
export { createPageHasher } from './xxhash64-pages.mjs';

export interface DigestPagesOptions {
  /** Let the event loop run every this many pages (setImmediate). @default 0: never */
  yieldEveryPages?: number;
  /** Asked between batches of pages; true ends the digest with an Error whose `code` is 'STOPPED'. */
  stopped?: () => boolean;
}

/** xxhash64 of the per-page xxhash64s of `pageCount` pages, in page order (16 hex digits). */
export declare function digestPages(
  pageCount: number,
  page: (n: number) => Uint8Array,
  options?: DigestPagesOptions,
): Promise<string>;
