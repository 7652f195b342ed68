/**
 * Host content for deduplication (capability `dedup-host`): page contents the destination holds
 * before a migration starts — in the memory of the other VMs it runs, which share contents when
 * they were booted from the same image (kernel, libraries, page cache) — so that a page of the
 * incoming VM with such a content travels as a reference, not as its bytes.
 *
 * Flow (destination, at Setup, before SetupDone):
 *
 *   scan     sample the other VMs' written pages (at most `maxScanPages`, evenly spread, and
 *            at most `timeBudgetMs`), skipping zero pages (they travel as zero records anyway),
 *            and count each content's SHA-256 (of the live page: only a count)
 *   choose   the contents seen most often first — seen more than once means a library or
 *            cache page, or one of the same image in several VMs: the likeliest to be in the
 *            incoming VM too — up to `maxPages`, and only those seen `minSeen` times or more
 *   snapshot copy each chosen page into the table's own buffer and hash THAT copy: the table
 *            holds exactly the bytes its hash names, whatever the other VMs write later (a page
 *            that changed between the count and the copy is kept under its new hash, or dropped
 *            when that content is already in the table)
 *
 * The table is then offered: its hashes go to the source in SetupDone (32 bytes each, entry k at
 * k × 32), and a reference to `pageCount + k` in a Pages batch means "a copy of entry k"
 * (page-applier.ts). The table owns its bytes (one ArrayBuffer of entries × pageSize, the
 * memory it costs) and is dropped when the migration no longer needs it.
 */
import type { GuestMemory } from '../vm/guest-memory.ts';
import { MigrationError } from '../errors.ts';
import { PAGE_HASH_BYTES, pageHash, pageHashBytes, type PageHash } from './dedup-index.ts';

/** Limits of one table build. */
export interface HostContentLimits {
  /** Most entries (each costs a page of memory and 32 bytes of SetupDone). */
  maxPages: number;
  /** Most pages hashed while counting. */
  maxScanPages: number;
  /** Time the scan may take, ms (the snapshot of the chosen pages comes after it). */
  timeBudgetMs: number;
  /**
   * Times a content must have been seen to be offered. @default 1 (the destination asks 2: a
   * content seen once is rarely anyone else's, and each entry costs a page here)
   */
  minSeen?: number;
}

/** What building the table did, for logs and the report. */
export interface HostContentFigures {
  /** Pages hashed while counting. */
  scanned: number;
  /** Distinct non-zero contents counted. */
  distinct: number;
  /** Of the contents offered, those seen at least twice. */
  repeated: number;
  /** Whether the scan stopped at its time budget. */
  outOfTime: boolean;
  /** Time the whole build took, ms. */
  ms: number;
}

/** Page contents the destination snapshotted for references (entry k = reference pageCount + k). */
export class HostContentTable {
  readonly pageSize: number;
  /** Entries. */
  readonly count: number;
  /** Entry k's SHA-256 at k × 32: what SetupDone carries. */
  readonly hashes: Uint8Array;
  readonly figures: HostContentFigures;
  readonly #bytes: Uint8Array;

  constructor(pageSize: number, bytes: Uint8Array, hashes: Uint8Array, figures: HostContentFigures) {
    if (bytes.length % pageSize !== 0 || hashes.length !== (bytes.length / pageSize) * PAGE_HASH_BYTES) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `host content: ${bytes.length} bytes of pages and ${hashes.length} bytes of hashes do not match`,
      );
    }
    this.pageSize = pageSize;
    this.count = bytes.length / pageSize;
    this.hashes = hashes;
    this.figures = figures;
    this.#bytes = bytes;
  }

  /** An empty table (nothing to offer). */
  static empty(pageSize: number, figures?: Partial<HostContentFigures>): HostContentTable {
    return new HostContentTable(pageSize, new Uint8Array(0), new Uint8Array(0), {
      scanned: 0,
      distinct: 0,
      repeated: 0,
      outOfTime: false,
      ms: 0,
      ...figures,
    });
  }

  /** Entry k's bytes (a view of the table), or undefined when there is no entry k. */
  entry(k: number): Uint8Array | undefined {
    if (!Number.isInteger(k) || k < 0 || k >= this.count) return undefined;
    return this.#bytes.subarray(k * this.pageSize, (k + 1) * this.pageSize);
  }

  /** Memory the table holds: its entries' bytes and their hashes. */
  get bytes(): number {
    return this.#bytes.length + this.hashes.length;
  }
}

/** A content being counted: how often, and one page that held it. */
interface Seen {
  n: number;
  memory: GuestMemory;
  page: number;
}

/** How often the scan looks at the clock (pages). */
const CLOCK_EVERY = 256;

/**
 * Build a table from `memories` (the destination's other VMs) within `limits`: the scan, the
 * choice and the snapshot described above. Released memories are skipped; the caller keeps the VMs
 * alive for this synchronous call.
 */
export function buildHostContent(
  memories: readonly GuestMemory[],
  pageSize: number,
  limits: HostContentLimits,
): HostContentTable {
  const started = performance.now();
  const live = memories.filter((m) => !m.released && m.pageSize === pageSize);
  const maxPages = Math.max(0, Math.floor(limits.maxPages));
  if (maxPages === 0 || live.length === 0) return HostContentTable.empty(pageSize);
  const seen = new Map<PageHash, Seen>();
  // Evenly spread over every written page of every VM: one in `step`.
  let written = 0;
  for (const memory of live) written += memory.touched.count;
  const step = Math.max(1, Math.ceil(written / Math.max(1, limits.maxScanPages)));
  let scanned = 0;
  let outOfTime = false;
  let skip = 0;
  scan: for (const memory of live) {
    for (let page = memory.touched.nextSet(0); page !== -1; page = memory.touched.nextSet(page + 1)) {
      if (skip-- > 0) continue;
      skip = step - 1;
      if (scanned % CLOCK_EVERY === 0 && performance.now() - started > limits.timeBudgetMs) {
        outOfTime = true;
        break scan;
      }
      if (scanned >= limits.maxScanPages) break scan;
      scanned++;
      if (memory.isZeroPage(page)) continue;
      const key = pageHash(memory.page(page));
      const entry = seen.get(key);
      if (entry) entry.n += 1;
      else seen.set(key, { n: 1, memory, page });
    }
  }
  // Most often seen first; Map order (first seen first) breaks ties, so the result is stable.
  const minSeen = limits.minSeen ?? 1;
  const ranked = [...seen.values()]
    .filter((s) => s.n >= minSeen)
    .sort((a, b) => b.n - a.n)
    .slice(0, maxPages);
  const repeated = ranked.reduce((sum, s) => sum + (s.n > 1 ? 1 : 0), 0);
  const bytes = new Uint8Array(ranked.length * pageSize);
  const hashes = new Uint8Array(ranked.length * PAGE_HASH_BYTES);
  const kept = new Set<PageHash>();
  let count = 0;
  for (const { memory, page } of ranked) {
    const slot = bytes.subarray(count * pageSize, (count + 1) * pageSize);
    slot.set(memory.page(page));
    // The copy's own hash: the vCPU may have written the page since it was counted.
    const key = pageHash(slot);
    if (kept.has(key)) continue;
    kept.add(key);
    hashes.set(pageHashBytes(key), count * PAGE_HASH_BYTES);
    count++;
  }
  const figures: HostContentFigures = {
    scanned,
    distinct: seen.size,
    repeated,
    outOfTime,
    ms: performance.now() - started,
  };
  // Contents that became equal to another between the count and the copy leave a gap: the table
  // keeps only what it offers.
  const whole = count === ranked.length;
  return new HostContentTable(
    pageSize,
    whole ? bytes : bytes.slice(0, count * pageSize),
    whole ? hashes : hashes.slice(0, count * PAGE_HASH_BYTES),
    figures,
  );
}
