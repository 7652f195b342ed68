/**
 * The source's page encodings for one migration (issue 17): XBZRLE deltas from a bounded cache of
 * what was sent, references to pages the destination already holds with the same content, and
 * compression of what is left in one block per batch, in a worker thread. Which of them run is
 * decided batch by batch from measurements (encoding-policy.ts) within what the handshake
 * negotiated and the operator allowed.
 *
 * The one invariant everything here serves: the delta cache and the dedup index model EXACTLY
 * what the destination holds. So every non-zero page is first copied (a snapshot: the vCPU may be
 * writing it), and the snapshot — never the live page — is what is encoded, hashed, cached, sent
 * and put in the digest ledger; a page sent any way updates both models (stored or invalidated,
 * recorded or forgotten). A vCPU write after the snapshot dirties the page again: it goes in a
 * later round, as for raw pages.
 *
 * Delta and Dedup build on the destination's copy, so they stop for good when its VM may run
 * (`destinationRuns()`, at the handoff); the pre-copy sender is the only user before that.
 */
import { CompressPool, DedupIndex, DeltaCache, COMPRESSION_CODECS, pageHash } from '@livemig/shared/codec';
import { MigrationError } from '@livemig/shared';
import { PageKind } from '@livemig/shared/protocol';
import type { EncodingsReport } from '@livemig/shared/report';
import {
  COMPRESS_LEVELS,
  levelFigures,
  type CodecFigures,
  type CompressLevel,
  type MeasuredLevel,
} from './compress-levels.ts';
import type { EncodingParams } from './encoding-policy.ts';
import type { GuestMemory } from '@livemig/shared/vm';

/** A block is sent compressed only when it is at most this fraction of the pages' bytes. */
export const MIN_COMPRESSION_GAIN = 0.95;
/** Bytes a level must have compressed here before its measured speed replaces the prior. */
const MIN_MEASURED_BYTES = 1024 * 1024;

/** What a migration may use (negotiated ∧ allowed), fixed at its start. */
export interface PageCodecsOptions {
  delta: { cacheBytes: number } | null;
  /**
   * `index`: the dedup index to use (built by the caller when it must seed it: host content,
   * host-content-refs.ts); otherwise a new one bounded by `maxEntries`.
   */
  dedup: { maxEntries?: number; index?: DedupIndex } | null;
  /** Levels the policy may pick from (compress-levels.ts); workers for the pool. */
  compress: {
    codecs: readonly CompressLevel[];
    workers: number;
    /** The most workers the policy may ask for (its choice's compressThreads). @default workers */
    maxWorkers?: number;
  } | null;
}

/** What the current batch uses (the policy's latest choice). */
export interface ActiveEncodings {
  delta: boolean;
  dedup: boolean;
  compress: CompressLevel | null;
}

/** Counters for the report (QEMU's xbzrle statistics and multifd-compression figures). */
export interface PageCodecStats {
  deltaPages: number;
  deltaBytes: number;
  /** Raw bytes of the pages sent as deltas, less their deltas. */
  deltaBytesSaved: number;
  dedupPages: number;
  compressedPages: number;
  /** Bytes of pages that went into compressed blocks, and the blocks' bytes. */
  compressInBytes: number;
  compressOutBytes: number;
  /** Blocks compressed but sent raw (not worth it), and their pages. */
  incompressibleBlocks: number;
  /** Time spent encoding batches on the main thread (snapshot, hash, delta), ms. */
  encodeMs: number;
  /** Time waiting for the compression worker, ms. */
  compressWaitMs: number;
}

/** One encoded batch: kinds, the payload views in wire order, and the encoded pages' metadata. */
export interface CodecBatch {
  kinds: Uint8Array;
  views: Uint8Array[];
  payloadBytes: number;
  /** Page bytes before encoding: pages sent with content × pageSize (the raw equivalent). */
  rawEquivalentBytes: number;
  deltas?: Uint32Array;
  refs?: Uint32Array;
  zcodec?: number;
  zlen?: number;
}

export class PageCodecs {
  readonly options: PageCodecsOptions;
  readonly stats: PageCodecStats = {
    deltaPages: 0,
    deltaBytes: 0,
    deltaBytesSaved: 0,
    dedupPages: 0,
    compressedPages: 0,
    compressInBytes: 0,
    compressOutBytes: 0,
    incompressibleBlocks: 0,
    encodeMs: 0,
    compressWaitMs: 0,
  };
  readonly #cache: DeltaCache | undefined;
  readonly #index: DedupIndex | undefined;
  #pool: CompressPool | undefined;
  #active: ActiveEncodings = { delta: false, dedup: false, compress: null };
  /** Compression workers allowed now: `workers` at first, up to `maxWorkers` as the policy asks. */
  #threads: number;
  /** Per level, what it did here: input bytes, output bytes (a block sent raw counts as its input), ms waited. */
  readonly #measured = new Map<
    CompressLevel,
    { in: number; out: number; ms: number; firstIn: number; firstOut: number }
  >();
  #destinationRuns = false;
  #finalPoolStats: CompressPool['stats'] | undefined;
  #closed = false;

  constructor(options: PageCodecsOptions) {
    this.options = options;
    this.#threads = options.compress?.workers ?? 1;
    this.#cache = options.delta ? new DeltaCache({ cacheBytes: options.delta.cacheBytes }) : undefined;
    this.#index = options.dedup ? (options.dedup.index ?? new DedupIndex(options.dedup)) : undefined;
    // Started now, so its thread boots during the setup, not inside the first measured batch.
    if (options.compress) this.#pool = new CompressPool({ workers: options.compress.workers });
  }

  /** The encodings in force for the next batches. */
  get active(): ActiveEncodings {
    return this.#active;
  }

  /** Delta cache statistics (QEMU's xbzrle cache hits, misses, overflows), when deltas are allowed. */
  get cacheStats(): DeltaCache['stats'] | undefined {
    return this.#cache?.stats;
  }

  /** The compression pool's statistics (bytes in/out, busy ms per worker), once it started. */
  get poolStats(): CompressPool['stats'] | undefined {
    return this.#pool?.stats;
  }

  /** Compression workers allowed now (the depth a sender keeps ahead). */
  get compressThreads(): number {
    return this.#threads;
  }

  /**
   * Apply the policy's choice, within what is allowed; Delta and Dedup never after
   * destinationRuns(). Compression workers only grow (up to maxWorkers): a level that needed a
   * second one still has it if the next choice needs one.
   */
  use(choice: ActiveEncodings & { compressThreads?: number }): void {
    const o = this.options;
    const compress = choice.compress !== null && o.compress?.codecs.includes(choice.compress) ? choice.compress : null;
    const wanted = Math.min(choice.compressThreads ?? 0, o.compress?.maxWorkers ?? this.#threads);
    if (compress !== null && wanted > this.#threads) {
      this.#threads = wanted;
      this.#pool?.raiseWorkers(wanted);
    }
    this.#active = {
      delta: choice.delta && this.#cache !== undefined && !this.#destinationRuns,
      dedup: choice.dedup && this.#index !== undefined && !this.#destinationRuns,
      compress,
    };
  }

  /** The destination's VM may run from now on: its pages are no longer what the models say. */
  destinationRuns(): void {
    this.#destinationRuns = true;
    this.use({ ...this.#active, delta: false, dedup: false });
  }

  /** Whether batches go through encode() (else the zero-copy raw path, then sentPlain()). */
  get engaged(): boolean {
    return this.#active.delta || this.#active.dedup || this.#active.compress !== null;
  }

  /**
   * `pages` went raw or zero without encode() (nothing engaged): the cache and the index forget
   * them, so that neither ever claims a content the destination no longer holds. O(pages), no
   * copy: an encoding off costs nothing on a fast link.
   */
  sentPlain(pages: Uint32Array): void {
    const cache = this.#cache;
    const index = this.#index;
    if (cache === undefined && index === undefined) return;
    for (let i = 0; i < pages.length; i++) {
      cache?.invalidate(pages[i]!);
      index?.forget(pages[i]!);
    }
  }

  /**
   * Encode `pages` (batch order, each once). `zeroPages`: zero pages go as zero records.
   * `cacheNew`: store pages sent raw in the delta cache (from round 1, or round 0 when the VM fits
   * the cache: QEMU's policy, see delta-cache.ts). `onPageSent` sees each page's bytes as sent
   * (the snapshot) or null for a zero page.
   */
  async encode(
    pages: Uint32Array,
    memory: GuestMemory,
    e: { zeroPages: boolean; cacheNew: boolean; onPageSent: (page: number, bytes: Uint8Array | null) => void },
  ): Promise<CodecBatch> {
    const started = performance.now();
    const pageSize = memory.pageSize;
    const n = pages.length;
    const kinds = new Uint8Array(n);
    const cache = this.#cache;
    const index = this.#index;
    const { delta, dedup, compress } = this.#active;
    const arena = new Uint8Array(n * pageSize);
    const deltaOut = delta ? new Uint8Array(n * pageSize) : undefined;
    const deltas: number[] = [];
    const refs: number[] = [];
    let deltaAt = 0;
    const inBatch = dedup ? new Set(pages) : undefined;
    /** Batch indices of pages that still need their bytes sent (raw or compressed). */
    const plain: number[] = [];
    let contentPages = 0;
    for (let i = 0; i < n; i++) {
      const page = pages[i]!;
      if (e.zeroPages && memory.isZeroPage(page)) {
        kinds[i] = PageKind.Zero;
        cache?.invalidate(page);
        index?.forget(page);
        e.onPageSent(page, null);
        continue;
      }
      contentPages += 1;
      const snapshot = arena.subarray(i * pageSize, (i + 1) * pageSize);
      snapshot.set(memory.page(page));
      e.onPageSent(page, snapshot);
      const hash = index ? pageHash(snapshot) : undefined;
      if (dedup && hash !== undefined) {
        const from = index!.find(hash);
        if (from !== undefined && from !== page && !inBatch!.has(from)) {
          kinds[i] = PageKind.Dedup;
          refs.push(from);
          index!.sent(page, hash);
          if (cache) this.#cacheAs(cache, page, snapshot, e.cacheNew);
          this.stats.dedupPages += 1;
          continue;
        }
      }
      if (hash !== undefined) index!.sent(page, hash);
      if (delta && deltaOut !== undefined) {
        // A miss is counted (and stored) only where the policy caches new pages: QEMU's counters.
        if (e.cacheNew || cache!.lookup(page) !== undefined) {
          const result = cache!.encode(page, snapshot, deltaOut.subarray(deltaAt), pageSize);
          if (result.kind === 'delta') {
            kinds[i] = PageKind.Delta;
            deltas.push(result.length);
            deltaAt += result.length;
            this.stats.deltaPages += 1;
            this.stats.deltaBytes += result.length;
            this.stats.deltaBytesSaved += pageSize - result.length;
            continue;
          }
        }
      } else if (cache) {
        this.#cacheAs(cache, page, snapshot, e.cacheNew);
      }
      plain.push(i);
    }
    this.stats.encodeMs += performance.now() - started;
    const batch: CodecBatch = { kinds, views: [], payloadBytes: 0, rawEquivalentBytes: contentPages * pageSize };
    let block: Uint8Array | undefined;
    if (compress !== null && plain.length > 0) block = await this.#compress(plain, arena, pageSize, compress);
    for (const i of plain) {
      if (block !== undefined) kinds[i] = PageKind.Compressed;
      else batch.views.push(arena.subarray(i * pageSize, (i + 1) * pageSize));
    }
    if (deltaAt > 0 || deltas.length > 0) {
      batch.deltas = Uint32Array.from(deltas);
      if (deltaAt > 0) batch.views.push(deltaOut!.subarray(0, deltaAt));
    }
    if (refs.length > 0) batch.refs = Uint32Array.from(refs);
    if (block !== undefined) {
      batch.views.push(block);
      batch.zcodec = COMPRESSION_CODECS.indexOf(COMPRESS_LEVELS[compress!].codec);
      batch.zlen = block.length;
      this.stats.compressedPages += plain.length;
    }
    for (const view of batch.views) batch.payloadBytes += view.length;
    return batch;
  }

  /**
   * Each level's speed (input bytes/s, from the time waited for it: with one batch at a time that
   * is its compression time) and ratio as measured here; levels not run yet are predicted
   * (compress-levels.ts levelFigures).
   */
  codecFigures(): Record<CompressLevel, CodecFigures> {
    const measured = new Map<CompressLevel, MeasuredLevel>();
    for (const [level, m] of this.#measured) {
      const ratio = (m.out + m.firstOut) / (m.in + m.firstIn);
      measured.set(level, m.in >= MIN_MEASURED_BYTES && m.ms > 0 ? { bps: (m.in / m.ms) * 1000, ratio } : { ratio });
    }
    return levelFigures(measured);
  }

  /** Stop the compression workers (no thread left behind); their figures stay for the report. */
  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    this.#closed = true;
    if (pool) this.#finalPoolStats = pool.stats;
    await pool?.close();
  }

  /** What each encoding did, for the report (`params`: as asked; `decisions`: the policy's lines). */
  report(params: EncodingParams, decisions: readonly string[]): EncodingsReport {
    const cache = this.#cache?.stats;
    const pool = this.#pool?.stats ?? this.#finalPoolStats;
    const s = this.stats;
    return {
      xbzrle: cache
        ? {
            mode: params.delta,
            cacheBytes: cache.cacheBytes,
            cacheHits: cache.cacheHits,
            cacheMisses: cache.cacheMisses,
            cacheOverflows: cache.cacheOverflows,
            pages: s.deltaPages,
            bytes: s.deltaBytes,
            bytesSaved: s.deltaBytesSaved,
          }
        : null,
      dedup: this.#index ? { mode: params.dedup, pages: s.dedupPages } : null,
      compression: this.options.compress
        ? {
            mode: params.compress,
            threads: this.#threads,
            pages: s.compressedPages,
            inputBytes: s.compressInBytes,
            outputBytes: s.compressOutBytes,
            incompressibleBlocks: s.incompressibleBlocks,
            busyMs: pool ? pool.busyMs.map((ms) => Math.round(ms * 10) / 10) : [],
          }
        : null,
      encodeMs: Math.round(s.encodeMs * 10) / 10,
      decisions: decisions.slice(0, 32), // the schema's bound (DecisionLog keeps no more)
    };
  }

  /** A page the destination now holds as `snapshot` by another path than a delta: the cache follows. */
  #cacheAs(cache: DeltaCache, page: number, snapshot: Uint8Array, cacheNew: boolean): void {
    if (cacheNew || cache.lookup(page) !== undefined) cache.store(page, snapshot);
  }

  /** The block for the pages at batch indices `plain`, or undefined when it does not pay. */
  async #compress(
    plain: readonly number[],
    arena: Uint8Array,
    pageSize: number,
    level: CompressLevel,
  ): Promise<Uint8Array | undefined> {
    const input = new Uint8Array(plain.length * pageSize);
    plain.forEach((i, k) => input.set(arena.subarray(i * pageSize, (i + 1) * pageSize), k * pageSize));
    const { codec, quality } = COMPRESS_LEVELS[level];
    // Never a new pool after close(): it would be a thread nobody ends.
    if (this.#closed) throw new MigrationError('ERR_CANCELLED', 'page encodings were closed');
    this.#pool ??= new CompressPool({ workers: this.#threads, codec });
    const started = performance.now();
    const output = await this.#pool.compress(input, codec, quality);
    const ms = performance.now() - started;
    this.stats.compressWaitMs += ms;
    this.stats.compressInBytes += input.length;
    const worth = output.length <= input.length * MIN_COMPRESSION_GAIN;
    // A level's first block is left out of its speed (its tables and the thread warming up),
    // not of its ratio.
    const m = this.#measured.get(level);
    const out = worth ? output.length : input.length;
    this.#measured.set(
      level,
      m === undefined
        ? { in: 0, out: 0, ms: 0, firstIn: input.length, firstOut: out }
        : { ...m, in: m.in + input.length, out: m.out + out, ms: m.ms + ms },
    );
    if (!worth) {
      this.stats.incompressibleBlocks += 1;
      return undefined;
    }
    this.stats.compressOutBytes += output.length;
    return output;
  }
}
