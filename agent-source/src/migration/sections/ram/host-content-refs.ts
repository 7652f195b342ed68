/**
 * References to content the destination host already holds (capability `dedup-host`), source
 * side. The second half of `dedup`: besides pages sent earlier in this migration, a page may
 * equal a page of another VM running on the destination — VMs booted from the same image share
 * their kernel, libraries and page cache.
 *
 *   Setup      ask for up to MAX_HOST_CONTENT_PAGES hashes (pre-copy and hybrid: post-copy
 *              sends no page through the encodings)
 *   SetupDone  the destination's offer: SHA-256 of each content it snapshotted, entry k at
 *              k × 32 bytes; each is pinned in the dedup index as the reference pageCount + k
 *              (no page has that number), before round 0 — so the encoder's existing path
 *              (page-codecs.ts) sends a page with such a content as that reference
 *   report     how many were offered, how many pages went as references to them, what the
 *              table costs the destination
 *
 * The destination copies entry k from its own snapshot, refuses an entry it did not offer
 * (ERR_BAD_ENCODING: the VM stays here), and the end-to-end digest still proves the result.
 */
import { PAGE_HASH_BYTES, pageHashOfBytes, type DedupIndex, type PageHash } from '@livemig/shared/codec';
import { MAX_HOST_CONTENT_PAGES, type SetupDoneMsg, type SetupMsg } from '@livemig/shared/protocol';
import type { EncodingsReport, HostDedupReport } from '@livemig/shared/report';

export class HostContentRefs {
  /** The migration's dedup index (PageCodecs uses this one), host content pinned in it. */
  readonly index: DedupIndex;
  readonly #pageCount: number;
  readonly #pageSize: number;
  /** What Setup asked for (0: nothing asked), and what the destination offered. */
  #asked = 0;
  #offered: { count: number; ms: number } | undefined;

  constructor(index: DedupIndex, memory: { pageCount: number; pageSize: number }) {
    this.index = index;
    this.#pageCount = memory.pageCount;
    this.#pageSize = memory.pageSize;
  }

  /** Setup: ask for host content (references are u32: pageCount + k must fit). */
  ask(setup: SetupMsg): void {
    if (setup.mode === 'postcopy') return;
    this.#asked = Math.min(MAX_HOST_CONTENT_PAGES, 0x1_0000_0000 - this.#pageCount);
    if (this.#asked > 0) setup.hostContent = this.#asked;
  }

  /** SetupDone: pin what the destination offered (no more than was asked) in the index. */
  offered(done: SetupDoneMsg): void {
    if (this.#asked === 0) return;
    const bytes = done.hostHashes ?? new Uint8Array(0);
    const count = Math.min(this.#asked, Math.floor(bytes.length / PAGE_HASH_BYTES));
    const hashes: PageHash[] = [];
    for (let k = 0; k < count; k++) {
      hashes.push(pageHashOfBytes(bytes.subarray(k * PAGE_HASH_BYTES, (k + 1) * PAGE_HASH_BYTES)));
    }
    this.index.addHost(hashes, this.#pageCount);
    this.#offered = { count, ms: done.hostMs ?? 0 };
  }

  /** What host content did, once the destination answered (undefined when none was asked). */
  report(): HostDedupReport | undefined {
    const offered = this.#offered;
    if (offered === undefined) return undefined;
    return {
      offered: offered.count,
      pages: this.index.host.hits,
      tableBytes: offered.count * (this.#pageSize + PAGE_HASH_BYTES),
      buildMs: Math.round(offered.ms * 10) / 10,
    };
  }

  /** `encodings` with the host figures added to its dedup part. */
  withHost(encodings: EncodingsReport | undefined): EncodingsReport | undefined {
    const host = this.report();
    const dedup = encodings?.dedup;
    if (encodings === undefined || !dedup || host === undefined) return encodings;
    return { ...encodings, dedup: { ...dedup, host } };
  }
}
