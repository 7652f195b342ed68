/**
 * Deduplication on the source: which page at the destination already holds a given content, so
 * that a page with that content can travel as a reference ("copy page N") instead of its bytes.
 *
 * Flow: for each page it is about to send, the source computes pageHash(bytes) and asks
 * find(hash). A page number means "the destination's copy of that page holds exactly these
 * bytes now": send a reference to it. Whatever it sends, the source then reports what the
 * destination holds for the page: sent(page, hash).
 *
 * Invariant (who owns what): the index is only as right as what it is told. Every page the
 * destination receives, by ANY encoding (raw, delta, compressed, zero page, dedup reference,
 * post-copy), must be reported: sent(page, hash) when its content's hash is known, forget(page)
 * otherwise. sent()/forget() drop the page's previous entry, because the destination's copy of
 * that page no longer holds the old content; a find() for the old content then never returns
 * that page. Several pages may hold the same content: the index remembers the most recent one
 * reported (a reference to any of them is right), and loses the content when that page changes
 * (an earlier holder is not tracked: a missed chance, never a wrong reference). `hash` must be
 * the hash of the very bytes the destination gets (hash a snapshot, not live memory a vCPU may
 * write meanwhile), and the end-to-end digest remains the proof that the copy is right.
 *
 * Bound: at most `maxEntries` contents; past that the least recently used one (reported or
 * found longest ago) is evicted. LRU rather than refusing new entries: later rounds send the
 * pages that changed, whose new contents are the likeliest to recur, and content that keeps
 * being found (shared libraries, page cache) stays.
 *
 * Hash: SHA-256 (node:crypto's one-shot hash(), which uses the CPU's SHA extensions), all 256
 * bits, as a 43-character base64url string (a Map key compared by value).
 *  - Accidental collisions: for 2^28 distinct pages (1 TiB), the birthday bound is
 *    2^56 / 2^257 ≈ 2^-201 (2^-73 even if only 128 bits were kept).
 *  - A malicious guest (it controls its pages, and a collision would make the destination copy
 *    the wrong content into a page): no SHA-256 collision is known; a generic one takes ~2^128
 *    evaluations, and hitting a given content ~2^256. (Truncating to 128 bits would leave ~2^64
 *    for any colliding pair: decades of one GPU, but within reach of a large farm.) Even then, a
 *    colliding pair inside one guest could only corrupt that guest's own page, which the
 *    end-to-end digest rejects (ERR_DIGEST_MISMATCH, the VM stays on the source).
 *  - Non-cryptographic hashes (xxhash64, xxh3, xxh128) are out: a guest can build collisions
 *    for them at will.
 *  Throughput measured here (2 vCPUs shared with other work, Node 20, 4096 pages of text, code
 *  and machine code, best of 8 runs; ±30% between runs, ranks stable):
 *
 *      SHA-256 node:crypto hash(), base64url out    1.1–1.3 GB/s  3.2–3.7 µs/page  ← chosen
 *      SHA-256 hash() to a Buffer, 128 bits kept    0.9–1.1 GB/s  3.8–4.4 µs/page  (extra Buffer)
 *      SHA-256 createHash().update().digest()       0.6–1.0 GB/s  4.0–7.1 µs/page  (object per page)
 *      BLAKE3 (hash-wasm 4.13, 128-bit output)      0.25–0.54 GB/s 7.5–16 µs/page
 *      SHA-512/256, BLAKE2b-512 node:crypto         0.33–0.54 GB/s 7.5–12 µs/page
 *      BLAKE2s-256 node:crypto                      0.33–0.42 GB/s 9.7–12 µs/page
 *      xxh128 / xxh64 hash-wasm (not cryptographic) 1.4–2.6 / 2.1–3.3 GB/s
 *
 *  Keeping all 256 bits is the fastest form (the digest goes straight to a string, no Buffer)
 *  and ends the collision question; it costs ~21 bytes more per entry than a 128-bit key.
 *
 * Host content (capability `dedup-host`): the destination may also hold contents outside this
 * VM's pages — a table it snapshotted from its other VMs at setup, entry k answering to the
 * reference pageCount + k. addHost() pins those contents: a find() for one returns its
 * reference first (it never changes and is never in the batch being sent), they are never
 * evicted and no sent()/forget() of a page drops them; only clear() does (a new migration).
 */
import { hash } from 'node:crypto';
import { MigrationError } from '../errors.ts';

/** A page content's identity: its SHA-256 as 43 base64url characters. */
export type PageHash = string;

/** Bytes of a page hash as raw SHA-256 (the wire form of host content: SetupDone's payload). */
export const PAGE_HASH_BYTES = 32;

/** Default bound on contents remembered: 256 Ki entries (1 GiB of distinct pages, ~35 MB of heap). */
export const DEFAULT_DEDUP_MAX_ENTRIES = 256 * 1024;

/** The dedup key of a page's bytes: SHA-256 as base64url (43 characters). */
export function pageHash(bytes: Uint8Array): PageHash {
  return hash('sha256', bytes, 'base64url');
}

/** The raw 32-byte SHA-256 of a page hash (what travels in SetupDone). */
export function pageHashBytes(hash: PageHash): Buffer {
  return Buffer.from(hash, 'base64url');
}

/** The page hash of a raw 32-byte SHA-256 digest. Throws ERR_INVALID_ARGUMENT for another length. */
export function pageHashOfBytes(digest: Uint8Array): PageHash {
  if (digest.length !== PAGE_HASH_BYTES) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `a page hash is ${PAGE_HASH_BYTES} bytes, not ${digest.length}`);
  }
  return Buffer.from(digest.buffer, digest.byteOffset, digest.length).toString('base64url');
}

/** Options of a DedupIndex. */
export interface DedupIndexOptions {
  /** Most contents remembered; the least recently used is evicted past it. @default 262144 */
  maxEntries?: number;
}

/** What a DedupIndex counted. */
export interface DedupIndexStats {
  /** Contents remembered now. */
  entries: number;
  /** find() calls. */
  lookups: number;
  /** find() calls that returned a page. */
  hits: number;
  /** Entries dropped because the index was full (not those dropped because their page changed). */
  evictions: number;
}

/** What a DedupIndex counted of host content (addHost). */
export interface DedupHostStats {
  /** Contents pinned by addHost(). */
  entries: number;
  /** find() calls answered with a host reference (each one a page not sent). */
  hits: number;
}

/** Content hash → a page whose destination copy holds that content (bounded, LRU). */
export class DedupIndex {
  /** The bound on entries. */
  readonly maxEntries: number;
  /** hash → page; Map order is recency (oldest first). */
  readonly #byHash = new Map<PageHash, number>();
  /** page → hash, for exactly the pages #byHash points to. */
  readonly #byPage = new Map<number, PageHash>();
  /** hash → reference of host content (pinned: not in the LRU, not bounded by maxEntries). */
  readonly #host = new Map<PageHash, number>();
  #lookups = 0;
  #hits = 0;
  #evictions = 0;
  #hostHits = 0;

  constructor(options: DedupIndexOptions = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_DEDUP_MAX_ENTRIES;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `dedup index: maxEntries must be a positive integer, not ${maxEntries}`,
      );
    }
    this.maxEntries = maxEntries;
  }

  /**
   * A page whose destination copy holds the content `hash` now — host content first (its
   * reference, ≥ the VM's page count: addHost) — or undefined. A hit on a page makes its entry
   * the most recently used.
   */
  find(hash: PageHash): number | undefined {
    this.#lookups++;
    const pinned = this.#host.get(hash);
    if (pinned !== undefined) {
      this.#hits++;
      this.#hostHits++;
      return pinned;
    }
    const page = this.#byHash.get(hash);
    if (page === undefined) return undefined;
    this.#hits++;
    this.#byHash.delete(hash);
    this.#byHash.set(hash, page);
    return page;
  }

  /**
   * Records that the destination's copy of `page` now holds the content `hash` (whatever
   * encoding carried it). Drops the page's previous content, if the index had one for it.
   */
  sent(page: number, hash: PageHash): void {
    this.forget(page);
    const holder = this.#byHash.get(hash);
    if (holder !== undefined) {
      // The content moves to its most recent holder; the earlier one is no longer tracked.
      this.#byHash.delete(hash);
      this.#byPage.delete(holder);
    } else if (this.#byHash.size >= this.maxEntries) {
      const oldest = this.#byHash.keys().next().value as PageHash;
      this.#byPage.delete(this.#byHash.get(oldest)!);
      this.#byHash.delete(oldest);
      this.#evictions++;
    }
    this.#byHash.set(hash, page);
    this.#byPage.set(page, hash);
  }

  /** The destination's copy of `page` changed to content the index does not know: drop its entry. */
  forget(page: number): void {
    const old = this.#byPage.get(page);
    if (old === undefined) return;
    this.#byPage.delete(page);
    this.#byHash.delete(old);
  }

  /**
   * Pins content the destination holds outside the VM's pages: `hashes[k]` answers to the
   * reference `base + k` (base = the VM's page count, so no page of the VM has that number). A
   * content listed twice keeps its first reference; one pinned already keeps its own.
   * Throws ERR_INVALID_ARGUMENT when a reference would not fit a u32 (the wire's refs).
   */
  addHost(hashes: readonly PageHash[], base: number): void {
    if (!Number.isInteger(base) || base < 0 || base + hashes.length - 1 > 0xffff_ffff) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `dedup index: host references ${base}..${base + hashes.length - 1} do not fit u32 page numbers`,
      );
    }
    hashes.forEach((hash, k) => {
      if (!this.#host.has(hash)) this.#host.set(hash, base + k);
    });
  }

  /** Host content pinned and the finds it answered. */
  get host(): DedupHostStats {
    return { entries: this.#host.size, hits: this.#hostHits };
  }

  /** Forgets everything, host content too (a new migration; counters are kept). */
  clear(): void {
    this.#byHash.clear();
    this.#byPage.clear();
    this.#host.clear();
  }

  /** Contents remembered now. */
  get size(): number {
    return this.#byHash.size;
  }

  /** The counters (a fresh object each call). */
  get stats(): DedupIndexStats {
    return { entries: this.#byHash.size, lookups: this.#lookups, hits: this.#hits, evictions: this.#evictions };
  }
}
