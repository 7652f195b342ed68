// The memory digest's one definition, in plain JavaScript so that both the agent (digest.ts,
// through tsx) and the digest worker thread (digest-worker.mjs, no TypeScript loader: it starts
// in milliseconds) run exactly this code — the value cannot differ between them:
//
//   digest = xxhash64(xxhash64(page 0) ‖ xxhash64(page 1) ‖ … ) as 16 hex digits,
//
// each page hash in xxhash64's canonical 8-byte form (hash-wasm's 'binary' digest). The page
// hashes are combined in batches of BATCH_PAGES, which gives the same value as one long update.
import { createXXHash64 } from 'hash-wasm';

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
  const pageHasher = await createXXHash64();
  const hasher = await createXXHash64();
  hasher.init();
  const batch = new Uint8Array(BATCH_PAGES * HASH_BYTES);
  let filled = 0;
  for (let n = 0; n < pageCount; n++) {
    pageHasher.init();
    pageHasher.update(page(n));
    batch.set(pageHasher.digest('binary'), filled * HASH_BYTES);
    filled += 1;
    if (filled === BATCH_PAGES) {
      hasher.update(batch);
      filled = 0;
      if (stopped?.())
        throw Object.assign(new Error(`digest stopped at page ${n + 1} of ${pageCount}`), { code: 'STOPPED' });
    }
    if (yieldEveryPages > 0 && n % yieldEveryPages === yieldEveryPages - 1) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  if (filled > 0) hasher.update(batch.subarray(0, filled * HASH_BYTES));
  return hasher.digest('hex');
}
