/**
 * The memory digest: xxhash64 (hash-wasm) of every page, combined in page order —
 * digest = xxhash64(xxhash64(page 0) ‖ xxhash64(page 1) ‖ … ) as 16 hex digits, each page hash
 * in xxhash64's canonical 8-byte form. It depends only on the bytes (not on regions, dirty state
 * or how the memory got there), so a source at pause and a destination before resume agree
 * exactly when their memory does.
 *
 * Per-page composition (ARCHITECTURE §2) is what lets a PageDigestLedger compute the same value
 * incrementally from the pages as they are sent or received, in any order, with pages never
 * sent counted as zero pages — so a migration can verify without rehashing all of memory
 * inside its downtime. Pages are hashed by createPageHasher (digest-pages.mjs → xxhash64-pages.mjs:
 * XXH64 of up to 256 pages per WebAssembly call): 290–340 ms per GiB here, against 450–600 ms
 * with hash-wasm's init/update/digest per page (1 GiB of random pages, 3 runs each, same
 * process); most of what is left is copying each page into the hasher's memory (150–300 ms). digestMemory() yields to the event loop every 256 MiB so an agent stays responsive; the
 * `digest` control command runs the same code (digest-pages.mjs) in a worker thread instead
 * (digest-worker.ts), so it costs the agent's event loop nothing.
 */
import { createXXHash64, type IHasher } from 'hash-wasm';
import { MigrationError } from '../errors.ts';
import { HASH_BYTES, createPageHasher, digestPages } from './digest-pages.mjs';
import { PAGE_SIZE, type GuestMemory } from './guest-memory.ts';

const YIELD_EVERY_PAGES = (256 * 1024 * 1024) / PAGE_SIZE;

// One synchronous page hasher per thread (the page hash's one definition, digest-pages.mjs): each
// use is synchronous, so sharing it is safe. digestMemory's hashers are per call (it awaits).
const pageHasher = createPageHasher();
const combiner: IHasher = await createXXHash64();
const ZERO_PAGE_HASH = hashPage(new Uint8Array(PAGE_SIZE));

/**
 * xxhash64 of one page's bytes (canonical 8-byte form): the page hash of the memory digest, also
 * what query-dirty-rate compares (dirty-rate.ts). Synchronous; the result is a fresh array.
 */
export function hashPage(bytes: Uint8Array): Uint8Array {
  return pageHasher.hashPage(bytes);
}

/** The memory digest (hex) of all guest memory. Consistent only while the vCPU is paused. */
export function digestMemory(memory: GuestMemory): Promise<string> {
  return digestPages(memory.pageCount, (n) => memory.page(n), { yieldEveryPages: YIELD_EVERY_PAGES });
}

/**
 * The memory digest kept page by page: update(page, bytes) as pages are sent or received (in
 * any order, a page any number of times: the last bytes win); digest() then equals
 * digestMemory() of a memory holding exactly those pages, every other page zero. 8 bytes per
 * page (2 MiB per GiB); digest() hashes only those, ~0.3 ms per GiB.
 */
export class PageDigestLedger {
  /** Pages covered. */
  readonly pageCount: number;
  readonly #hashes: Uint8Array;

  /**
   * A ledger of `pageCount` zero pages — or, given `shared`, over that table as it stands (a
   * SharedPageHashes' buffer, pageCount × 8 bytes): parallel bulk channels' workers record the
   * pages they move in the same table, so one digest covers pages from every channel.
   */
  constructor(pageCount: number, shared?: SharedArrayBuffer) {
    this.pageCount = pageCount;
    if (shared !== undefined) {
      if (shared.byteLength !== pageCount * HASH_BYTES) {
        throw new MigrationError(
          'ERR_INVALID_ARGUMENT',
          `a page-hash table of ${shared.byteLength} bytes for ${pageCount} pages`,
        );
      }
      this.#hashes = new Uint8Array(shared);
      return;
    }
    this.#hashes = new Uint8Array(pageCount * HASH_BYTES);
    for (let n = 0; n < pageCount; n++) this.#hashes.set(ZERO_PAGE_HASH, n * HASH_BYTES);
  }

  /** Records page n's current bytes (PAGE_SIZE of them). */
  update(page: number, bytes: Uint8Array): void {
    if (!(page >= 0 && page < this.pageCount && Number.isInteger(page))) {
      throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `page ${page} is outside the VM (0..${this.pageCount - 1})`);
    }
    if (bytes.length !== PAGE_SIZE) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a page is ${PAGE_SIZE} bytes, got ${bytes.length}`);
    }
    this.#hashes.set(hashPage(bytes), page * HASH_BYTES);
  }

  /** Records page n as all zero. */
  updateZero(page: number): void {
    this.#hashes.set(ZERO_PAGE_HASH, page * HASH_BYTES);
  }

  /** Records page n's hash (hashPage of its bytes), computed by another thread that installed it. */
  record(page: number, hash: Uint8Array): void {
    if (!(page >= 0 && page < this.pageCount && Number.isInteger(page)) || hash.length !== HASH_BYTES) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `no page hash of ${hash.length} bytes for page ${page}`);
    }
    this.#hashes.set(hash, page * HASH_BYTES);
  }

  /** The digest of the pages recorded so far (hex; same definition as digestMemory). */
  digest(): string {
    combiner.init();
    combiner.update(this.#hashes);
    return combiner.digest('hex');
  }
}
