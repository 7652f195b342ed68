/**
 * The page-hash table the channel workers write into: 8 bytes per page (xxhash64 of the page, the
 * memory digest's page hash) in a SharedArrayBuffer, page n at n × 8, every page a zero page's hash
 * until written. It is PageDigestLedger's table made shareable: digest() combines it exactly as the
 * ledger and digestMemory() do (digest.ts), so a destination whose pages arrived over N channels
 * (each worker hashing what it wrote) has its memory digest without rehashing, and a source's
 * channel workers leave the digest of what they sent. Workers write disjoint pages (a page is in one
 * share of a round) and rounds are ordered by the barrier, so no two threads write one entry at once.
 */
import { createXXHash64 } from 'hash-wasm';
import { MigrationError } from '../errors.ts';
import { hashPage } from '../vm/digest.ts';
import { PAGE_SIZE } from '../vm/guest-memory.ts';

const HASH_BYTES = 8;
const combiner = await createXXHash64();

export class SharedPageHashes {
  readonly pageCount: number;
  /** Pass this to the channel workers. */
  readonly buffer: SharedArrayBuffer;
  readonly #bytes: Uint8Array;

  constructor(pageCount: number) {
    if (!Number.isSafeInteger(pageCount) || pageCount < 1) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a page-hash table needs ≥ 1 page, got ${pageCount}`);
    }
    this.pageCount = pageCount;
    this.buffer = new SharedArrayBuffer(pageCount * HASH_BYTES);
    this.#bytes = new Uint8Array(this.buffer);
    const zero = hashPage(new Uint8Array(PAGE_SIZE));
    // Doubling copies: log2(pageCount) set() calls instead of pageCount.
    this.#bytes.set(zero, 0);
    for (let filled = HASH_BYTES; filled < this.#bytes.length; filled *= 2) {
      this.#bytes.copyWithin(filled, 0, Math.min(filled, this.#bytes.length - filled));
    }
  }

  /** Page n's recorded hash (a copy). */
  hashOf(page: number): Uint8Array {
    if (!(Number.isInteger(page) && page >= 0 && page < this.pageCount)) {
      throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `page ${page} is outside the table (0..${this.pageCount - 1})`);
    }
    return this.#bytes.slice(page * HASH_BYTES, (page + 1) * HASH_BYTES);
  }

  /** The memory digest of the pages recorded (hex; the definition of digest.ts). Read while no worker writes. */
  digest(): string {
    combiner.init();
    // hash-wasm copies its input into wasm memory; a SharedArrayBuffer view is read like any other.
    combiner.update(this.#bytes);
    return combiner.digest('hex');
  }
}
