// The memory digest's one definition, in plain JavaScript so that both the agent (digest.ts,
// through tsx) and the digest worker thread (digest-worker.mjs, no TypeScript loader: it starts
// in milliseconds) run exactly this code — the value cannot differ between them:
//
//   digest = xxhash64(xxhash64(page 0) ‖ xxhash64(page 1) ‖ … ) as 16 hex digits,
//
// each page hash in xxhash64's canonical 8-byte form (hash-wasm's 'binary' digest). The page
// hashes are combined in batches of BATCH_PAGES, which gives the same value as one long update.
//
// The page hash itself is createPageHasher (xxhash64-pages.mjs: XXH64 of a batch of pages in one
// WebAssembly call), re-exported here: every thread that hashes pages — the ledgers (digest.ts),
// the multifd channel workers, the digest worker — takes it from this module.
import { createXXHash64 } from 'hash-wasm';
import { createPageHasher } from './xxhash64-pages.mjs';

export { createPageHasher };

/** Bytes of one page hash. */
export const HASH_BYTES = 8;
const BATCH_PAGES = 1024;

/**
 * The digest (hex) of `pageCount` pages, page n's bytes read through `page(n)`. Options:
 * `yieldEveryPages` lets the event loop run between batches (setImmediate), `stopped()` is asked
 * between batches and, when true, ends the digest with an Error whose `code` is 'STOPPED'.
 */
export async function digestPages(pageCount, page, options = {}) {
  const { yieldEveryPages = 0, stopped } = options;
  const pageHasher = createPageHasher();
  const hasher = await createXXHash64();
  hasher.init();
  const batch = new Uint8Array(BATCH_PAGES * HASH_BYTES);
  const into = (i, hashes, at) => batch.set(hashes.subarray(at, at + HASH_BYTES), i * HASH_BYTES);
  let sinceYield = 0;
  for (let from = 0; from < pageCount; from += BATCH_PAGES) {
    const n = Math.min(BATCH_PAGES, pageCount - from);
    pageHasher.hashPages(n, (i) => page(from + i), into);
    hasher.update(batch.subarray(0, n * HASH_BYTES));
    if (n === BATCH_PAGES && stopped?.())
      throw Object.assign(new Error(`digest stopped at page ${from + n} of ${pageCount}`), { code: 'STOPPED' });
    sinceYield += n;
    if (yieldEveryPages > 0 && sinceYield >= yieldEveryPages) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return hasher.digest('hex');
}
