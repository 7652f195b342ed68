/**
 * The source's bounded cache of last-sent page versions, for XBZRLE deltas (QEMU's xbzrle cache,
 * migration/page_cache.c, sized by `--xbzrle-cache`, 64 MiB by default as QEMU's).
 *
 * Flow (the source's pre-copy loop, for a page re-sent in a later round):
 *
 *     const r = cache.encode(page, guestPageView, scratch);   // or encodeWithCache(cache, …)
 *     r.kind === 'delta' → send scratch[0, r.length) as a delta (length 0: page unchanged)
 *     r.kind === 'raw'   → send r.bytes, the snapshot the cache now holds (NOT the live page)
 *
 * The destination applies a delta to its copy of the page with xbzrleDecode(); for that, the
 * cache must hold EXACTLY the bytes the destination holds for the page. Hence:
 *  - encode() snapshots the live page once, encodes the snapshot, stores the snapshot, and
 *    hands back the snapshot for raw sends: a vCPU writing the page meanwhile cannot make the
 *    two ends disagree (its write dirties the page again and goes in a later round);
 *  - a page the destination receives by ANY other path (a zero page, a dedup reference, a
 *    compressed batch, a post-copy fault, a raw page not sent through encode()) must be
 *    store()d with exactly those bytes or invalidate()d, or a later delta would apply to a
 *    stale base. (QEMU does the same: xbzrle_cache_zero_page() when it sends a zero page.)
 *  - `r.bytes` and the cache's views are overwritten by the next encode()/store() that maps to
 *    the same slot: send or copy them before that (a batch that writes views of them to a
 *    socket must finish its encode() calls for the batch first and must not put two pages of
 *    one slot in one batch, or copy).
 *
 * Layout: one ArrayBuffer of `slots` pages, allocated at construction (the OS backs it lazily),
 * plus a Float64Array of tags (the page number held by each slot, -1 when empty). No allocation
 * per page other than the small result object.
 *
 * Mapping: direct-mapped, slot = page mod slots, overwrite on collision. This is QEMU's choice
 * (cache_get_cache_pos(): page index masked by the item count) and the reason is the same:
 * O(1) with one tag compare, no replacement bookkeeping, and a contiguous hot set of up to
 * `slots` pages never collides with itself (consecutive pages take consecutive slots), which
 * is the common shape of a working set. A set-associative LRU cache helps only scattered hot
 * sets close to the cache size (for a random hot set of half the slots, 2-way LRU keeps ~74% of
 * it against ~61% direct-mapped) at the cost of a recency update on every hit; a hot set larger
 * than the cache thrashes either way. Power-of-two strides collide with a power-of-two slot count
 * (the default): pick a cache size that is not a power of two to break that up.
 *
 * Policy is the caller's: QEMU puts pages in the cache only from the second pass on (a first-pass
 * page has no old version, and a VM larger than the cache would only churn it). If the VM fits
 * the cache, storing round-1 pages makes every round-2 page a hit instead of a miss.
 */
import { MigrationError } from '../errors.ts';
import { PAGE_SIZE } from '../vm/guest-memory.ts';
import { xbzrleEncode } from './xbzrle.ts';

/** The default cache size: 64 MiB, as QEMU's xbzrle cache. */
export const DEFAULT_DELTA_CACHE_BYTES = 64 * 1024 * 1024;

/** Options of a DeltaCache. */
export interface DeltaCacheOptions {
  /**
   * Bytes of page copies to keep (`--xbzrle-cache`); rounded down to whole pages, at least one.
   * @default 64 MiB
   */
  cacheBytes?: number;
  /** Bytes per page. @default PAGE_SIZE (4096) */
  pageSize?: number;
}

/**
 * What the cache counted, as QEMU's `info migrate` XBZRLE section reports it. Only encode()
 * counts hits, misses, overflows and encoded pages; store() counts evictions only.
 */
export interface DeltaCacheStats {
  /** Bytes the cache holds copies in (slots × page size): QEMU's `cache size`. */
  cacheBytes: number;
  /** encode() calls that found the page's last-sent version in the cache (a delta was tried). */
  cacheHits: number;
  /** encode() calls that did not (the page went raw and its copy was stored): QEMU's `cache miss`. */
  cacheMisses: number;
  /** cacheMisses / (cacheHits + cacheMisses), 0 before any encode(): QEMU's `cache miss rate`. */
  cacheMissRate: number;
  /** Hits whose delta was not smaller than the limit (the page went raw): QEMU's `overflow`. */
  cacheOverflows: number;
  /** Hits sent as deltas (cacheHits − cacheOverflows), empty deltas of unchanged pages included: QEMU's `pages`. */
  pagesEncoded: number;
  /** Bytes of those deltas (run headers and new bytes, no framing): QEMU's `bytes`. */
  encodedBytes: number;
  /** Page bytes minus delta bytes, summed over pagesEncoded: what deltas kept off the wire. */
  bytesSaved: number;
  /** (pagesEncoded × page size) / encodedBytes, 0 before any delta: QEMU's `encoding rate`. */
  encodingRate: number;
  /** store()s (from encode() or directly) that overwrote a slot holding a different page. */
  evictions: number;
}

/** What encode() decided for a page: send a delta of `length` bytes from `out`, or `bytes` raw. */
export type DeltaEncodeResult = { kind: 'delta'; length: number } | { kind: 'raw'; bytes: Uint8Array };

/** Bounded, direct-mapped cache of the last version of each page sent to the destination. */
export class DeltaCache {
  /** Number of page copies the cache holds. */
  readonly slots: number;
  /** Bytes per page. */
  readonly pageSize: number;
  readonly #data: Uint8Array;
  readonly #tags: Float64Array;
  readonly #views: (Uint8Array | undefined)[];
  readonly #snapshot: Uint8Array;
  #hits = 0;
  #misses = 0;
  #overflows = 0;
  #encoded = 0;
  #encodedBytes = 0;
  #saved = 0;
  #evictions = 0;

  constructor(options: DeltaCacheOptions = {}) {
    const pageSize = options.pageSize ?? PAGE_SIZE;
    const cacheBytes = options.cacheBytes ?? DEFAULT_DELTA_CACHE_BYTES;
    if (!Number.isInteger(pageSize) || pageSize < 4 || pageSize % 4 !== 0) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `delta cache: bad page size ${pageSize}`);
    }
    if (!Number.isFinite(cacheBytes) || cacheBytes < 0) {
      throw new MigrationError('ERR_INVALID_SIZE', `delta cache: bad size ${cacheBytes} bytes`);
    }
    this.pageSize = pageSize;
    this.slots = Math.max(1, Math.floor(cacheBytes / pageSize));
    try {
      this.#data = new Uint8Array(this.slots * pageSize);
    } catch (error) {
      throw new MigrationError('ERR_INVALID_SIZE', `delta cache: cannot allocate ${this.slots * pageSize} bytes`, {
        cause: error,
      });
    }
    this.#tags = new Float64Array(this.slots).fill(-1);
    this.#views = new Array<Uint8Array | undefined>(this.slots);
    this.#snapshot = new Uint8Array(pageSize);
  }

  /**
   * The cached last-sent version of `page`, or undefined. A view into the cache: valid until
   * the next store()/encode() mapping to the same slot. Counts nothing.
   */
  lookup(page: number): Uint8Array | undefined {
    const slot = this.#slot(page);
    return this.#tags[slot] === page ? this.#view(slot) : undefined;
  }

  /**
   * Records `bytes` (exactly what the destination now holds for `page`) as its last-sent
   * version, evicting whatever page held the slot. Copies; returns the cache's view of the copy.
   */
  store(page: number, bytes: Uint8Array): Uint8Array {
    if (bytes.length !== this.pageSize) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `delta cache: page of ${bytes.length} bytes, expected ${this.pageSize}`,
      );
    }
    const slot = this.#slot(page);
    const tag = this.#tags[slot]!;
    if (tag !== page && tag !== -1) this.#evictions++;
    this.#tags[slot] = page;
    const view = this.#view(slot);
    view.set(bytes);
    return view;
  }

  /** Forgets `page` (its destination copy changed by a path that did not go through the cache). */
  invalidate(page: number): void {
    const slot = this.#slot(page);
    if (this.#tags[slot] === page) this.#tags[slot] = -1;
  }

  /** Forgets every page (a new migration; counters are kept). */
  clear(): void {
    this.#tags.fill(-1);
  }

  /**
   * Encodes the current content of `page` (`cur`, possibly live guest memory) against its
   * last-sent version and updates the cache to the version sent, counting as QEMU does.
   *
   * Hit: snapshots `cur`, encodes the delta into `out` (it must be shorter than `limit`),
   * stores the snapshot; returns `{ kind: 'delta', length }` (length 0: unchanged, the caller
   * may skip sending it), or `{ kind: 'raw', bytes }` on overflow. Miss: stores a copy of `cur`
   * and returns it as `{ kind: 'raw', bytes }`. Send `bytes`, not `cur` (see the file header).
   *
   * @param limit deltas must be shorter than this. @default min(pageSize, out.length)
   */
  encode(
    page: number,
    cur: Uint8Array,
    out: Uint8Array,
    limit: number = Math.min(this.pageSize, out.length),
  ): DeltaEncodeResult {
    if (cur.length !== this.pageSize) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `delta cache: page of ${cur.length} bytes, expected ${this.pageSize}`,
      );
    }
    const slot = this.#slot(page);
    if (this.#tags[slot] !== page) {
      this.#misses++;
      return { kind: 'raw', bytes: this.store(page, cur) };
    }
    this.#hits++;
    const old = this.#view(slot);
    const snapshot = this.#snapshot;
    snapshot.set(cur);
    const length = xbzrleEncode(old, snapshot, out, limit);
    old.set(snapshot);
    if (length < 0) {
      this.#overflows++;
      return { kind: 'raw', bytes: old };
    }
    this.#encoded++;
    this.#encodedBytes += length;
    this.#saved += this.pageSize - length;
    return { kind: 'delta', length };
  }

  /** The counters (a fresh object each call). */
  get stats(): DeltaCacheStats {
    const lookups = this.#hits + this.#misses;
    return {
      cacheBytes: this.slots * this.pageSize,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      cacheMissRate: lookups === 0 ? 0 : this.#misses / lookups,
      cacheOverflows: this.#overflows,
      pagesEncoded: this.#encoded,
      encodedBytes: this.#encodedBytes,
      bytesSaved: this.#saved,
      encodingRate: this.#encodedBytes === 0 ? 0 : (this.#encoded * this.pageSize) / this.#encodedBytes,
      evictions: this.#evictions,
    };
  }

  #slot(page: number): number {
    if (page >>> 0 !== page) throw new MigrationError('ERR_INVALID_ARGUMENT', `delta cache: bad page number ${page}`);
    return page % this.slots;
  }

  #view(slot: number): Uint8Array {
    let view = this.#views[slot];
    if (view === undefined) {
      view = this.#data.subarray(slot * this.pageSize, (slot + 1) * this.pageSize);
      this.#views[slot] = view;
    }
    return view;
  }
}

/**
 * `cache.encode(page, cur, out)`: a delta of `cur` against the last-sent version of `page`, or
 * the snapshot to send raw, with the cache and its counters updated. See DeltaCache.encode().
 */
export function encodeWithCache(cache: DeltaCache, page: number, cur: Uint8Array, out: Uint8Array): DeltaEncodeResult {
  return cache.encode(page, cur, out);
}
