/**
 * How fast a running guest dirties its memory, measured without its dirty log — QEMU's
 * `calc-dirty-rate` in its page-sampling mode (migration/dirtyrate.c):
 *
 *   1. choose `n` of the VM's `N` pages at random (samplePageCount, choosePages);
 *   2. hash each (xxhash64, the memory digest's page hash);
 *   3. wait the calc-time window;
 *   4. hash the same pages again, in the same order;
 *   5. k of them changed: the guest dirtied about k/n of its memory in the window, so
 *      rate = k/n × memory bytes / window (estimateDirtyRate).
 *
 * Why sampling and not the dirty log: harvesting a log clears it, so a measurement would steal
 * the bits a migration in flight needs to resend those pages (QEMU's dirty-bitmap mode has the
 * same problem, which is why page-sampling is its default). Reading and hashing a few pages
 * changes nothing, so this may run on a VM that is migrating out, and next to the agent's own
 * metrics sampler.
 *
 * What the figure means, and what it is not:
 * - It counts *distinct* pages: a page written twice in the window counts once, as it would in a
 *   pre-copy round of that length (which resends it once). A page written back to the bytes it
 *   had, or written with the same bytes, is not seen. So the figure is a lower bound of the
 *   write traffic, like QEMU's, and depends on the window: a hot set of H pages written faster
 *   than H per window reads as at most H pages per window.
 * - MB is 10^6 bytes, as in the rest of livemig (QEMU's "MB/s" there is MiB/s).
 * - It is an estimate from n of N pages. With the k/n = p̂ observed, the standard error of p̂ is
 *   sqrt(p̂(1 − p̂)/n × (N − n)/(N − 1)) — sampling without replacement (hypergeometric), so
 *   sampling every page has no error — and the rate's standard error is that × memory / window
 *   (`standardErrorMBps`). When no sampled page changed that formula says 0; the honest bound is
 *   then the "rule of three": the true fraction is below 3/n with 95% confidence
 *   (rateUpperBound95). E.g. 1024 samples seeing 40% changed: ± 1.5 percentage points (3.8% of the
 *   rate); 256 samples seeing 10%: ± 1.9 points (19%).
 * - The window is measured, not assumed: from the middle of the first hash pass to the middle of
 *   the second (each page is hashed at about the same offset in both passes), so a slow pass or a
 *   late timer lengthens the window instead of inflating the rate.
 *
 * Everything here is a pure function of its inputs except measureDirtyRate, which reads memory,
 * sleeps and reads the clock.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import { MigrationError } from '../errors.ts';
import { hashPage } from './digest.ts';
import { HASH_BYTES } from './digest-pages.mjs';
import { PAGE_SIZE as PAGE_BYTES } from './guest-memory.ts';
import { below, deriveKey, stepHash } from './prng.ts';

/** Bytes in the MB of `dirtyRateMBps` (decimal, as livemig's units). */
export const MB = 1_000_000;
const GiB = 1024 ** 3;

/** The bounds and defaults of a measurement (QEMU's, where it has them: dirtyrate.h). */
export const DIRTY_RATE_LIMITS = {
  /** @default 1000 ms, QEMU's default calc-time (1 s). */
  defaultCalcTimeMs: 1000,
  /**
   * Shortest window: below it the window is a few vCPU batches and timer ticks, and the time to
   * hash the samples is a sizeable part of it (QEMU allows 50 ms).
   */
  minCalcTimeMs: 100,
  /** Longest window, QEMU's (60 s). */
  maxCalcTimeMs: 60_000,
  /** QEMU's default sample-pages (per GiB of guest memory). */
  defaultSamplePagesPerGiB: 512,
  /** QEMU's bounds on sample-pages (per GiB): 16384 is 1/16 of a GiB's pages. */
  minSamplePagesPerGiB: 128,
  maxSamplePagesPerGiB: 16_384,
  /**
   * Fewest pages sampled whatever the VM's size (unless it has fewer): QEMU does not measure
   * RAM blocks under 128 MiB at all; livemig's VMs are often smaller, and 512 per GiB of a
   * 64 MiB VM would be 32 pages — a standard error of up to 9 percentage points.
   */
  minSamplePages: 256,
  /** Most checkpoints: the shortest is then 1/2^6 of the window. */
  maxCheckpoints: 6,
} as const;

/** How a measurement is asked for (the control command's optional arguments). */
export interface DirtyRateOptions {
  /** The window between the two hash passes, ms. @default 1000 */
  calcTimeMs?: number;
  /** Pages sampled per GiB of guest memory. @default 512 */
  samplePagesPerGiB?: number;
  /**
   * Also hash the sample at 1/2, 1/4, … of the window (this many points, before the end), so
   * the result has the curve of distinct pages dirtied against window length — what the
   * prediction model fits (a hot set saturates, a streaming writer does not). @default 0
   */
  checkpoints?: number;
}

/** DirtyRateOptions with the defaults applied and checked. */
export type ResolvedDirtyRateOptions = Required<DirtyRateOptions>;

/** One point of the curve: of the sample, how many pages changed within `windowMs`. */
export interface DirtyCurvePoint {
  windowMs: number;
  pagesChanged: number;
}

/** What a measurement found. */
export interface DirtyRateEstimate {
  /** Distinct bytes dirtied per second, in MB/s (10^6 bytes): pagesChanged/pagesSampled × memory / window. */
  dirtyRateMBps: number;
  /** The standard error of dirtyRateMBps (sampling error only; 0 when every page was sampled). */
  standardErrorMBps: number;
  /** Pages hashed (twice each). */
  pagesSampled: number;
  /** Of those, pages whose hash differed. */
  pagesChanged: number;
  /** The measured window, ms (middle of the first hash pass to middle of the second). */
  windowMs: number;
}

/** A measurement, with when it started and what it was of. */
export interface DirtyRateMeasurement extends DirtyRateEstimate {
  /** When the first hash pass began, ms since the epoch. */
  startedAt: number;
  /** Guest memory size, bytes. */
  memoryBytes: number;
  /** With `checkpoints`: the curve, shortest window first, the whole window last. */
  curve?: DirtyCurvePoint[];
  /** With `checkpoints`: sampled pages that were all zero in the first pass. */
  zeroPagesSampled?: number;
}

/** What measureDirtyRate reads: a GuestMemory has it. */
export interface SampledMemory {
  readonly bytes: number;
  readonly pageCount: number;
  page(n: number): Uint8Array;
}

/** What measureDirtyRate uses besides the memory; tests replace the clock and the sleep. */
export interface DirtyRateComponents {
  /** Seed of the sample's page choice. @default random */
  seed?: number;
  /**
   * Fewest pages sampled, for the engine's own measurements (not a control argument: QEMU's
   * per-GiB bounds hold there). @default DIRTY_RATE_LIMITS.minSamplePages
   */
  minSamplePages?: number;
  /** Ends the wait early; the measurement then rejects with ERR_CANCELLED. */
  signal?: AbortSignal;
  /** @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<unknown>;
  /** Milliseconds, monotonic. @default performance.now */
  now?: () => number;
  /** Milliseconds since the epoch. @default Date.now */
  wallClock?: () => number;
  /**
   * Called between the two passes, just before the wait (a test's hook to know the first pass
   * is done).
   */
  onFirstPass?: () => void;
  /**
   * With checkpoints: cancelled after at least one, resolve with the curve so far (the window
   * is then the last checkpoint's) instead of rejecting. @default false
   */
  keepPartial?: boolean;
  /** With checkpoints: called after each, with the measurement so far (the curve to that point). */
  onCheckpoint?: (soFar: DirtyRateMeasurement) => void;
}

/** Pages hashed between two yields to the event loop (16 MiB, a few ms). */
const HASH_CHUNK_PAGES = 4096;
/** deriveKey tag of the sample's page choice. */
const SAMPLE_TAG = 0xd127;

/**
 * The options with defaults applied; ERR_INVALID_ARGUMENT for a value that is not a whole number
 * within its bounds (the message names the argument and the bounds).
 */
export function resolveDirtyRateOptions(
  options: { calcTimeMs?: unknown; samplePagesPerGiB?: unknown; checkpoints?: unknown } = {},
): ResolvedDirtyRateOptions & { checkpoints: number } {
  const L = DIRTY_RATE_LIMITS;
  return {
    checkpoints: wholeInRange('checkpoints', options.checkpoints ?? 0, 0, L.maxCheckpoints, 'points'),
    calcTimeMs: wholeInRange(
      'calcTimeMs',
      options.calcTimeMs ?? L.defaultCalcTimeMs,
      L.minCalcTimeMs,
      L.maxCalcTimeMs,
      'ms',
    ),
    samplePagesPerGiB: wholeInRange(
      'samplePagesPerGiB',
      options.samplePagesPerGiB ?? L.defaultSamplePagesPerGiB,
      L.minSamplePagesPerGiB,
      L.maxSamplePagesPerGiB,
      'pages per GiB',
    ),
  };
}

function wholeInRange(name: string, value: unknown, min: number, max: number, unit: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `${name} must be a whole number from ${min} to ${max} (${unit}), got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
  }
  return value;
}

/**
 * How many of `pageCount` pages of `memoryBytes` to sample: samplePagesPerGiB per GiB, at least
 * `minPages` (DIRTY_RATE_LIMITS.minSamplePages unless the engine asks for more), at most every page.
 */
export function samplePageCount(
  memoryBytes: number,
  pageCount: number,
  samplePagesPerGiB: number,
  minPages: number = DIRTY_RATE_LIMITS.minSamplePages,
): number {
  const wanted = Math.round((memoryBytes / GiB) * samplePagesPerGiB);
  return Math.min(pageCount, Math.max(minPages, wanted));
}

/**
 * `count` distinct pages of `pageCount`, drawn uniformly (every subset of that size equally
 * likely) from `seed`, ascending (so both passes read memory in order). Robert Floyd's sampling
 * algorithm: `count` draws and a set of `count`, whatever the VM's size.
 */
export function choosePages(pageCount: number, count: number, seed: number): Uint32Array {
  if (!(Number.isSafeInteger(count) && count >= 0 && count <= pageCount)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `cannot choose ${count} of ${pageCount} pages`);
  }
  const key = deriveKey(seed, SAMPLE_TAG);
  const chosen = new Set<number>();
  for (let j = pageCount - count, i = 0; j < pageCount; j++, i++) {
    // A draw in [0, j]: exact for up to 2^22 pages (16 GiB, the largest VM), see prng.ts `below`.
    const t = below(stepHash(i, 0, key), j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  return Uint32Array.from(chosen).sort();
}

/** Hash pages[from..to) of `memory` into `into` (HASH_BYTES per page, at the page's index). */
export function hashSamples(
  memory: Pick<SampledMemory, 'page'>,
  pages: Uint32Array,
  into: Uint8Array,
  from = 0,
  to = pages.length,
): void {
  for (let i = from; i < to; i++) into.set(hashPage(memory.page(pages[i]!)), i * HASH_BYTES);
}

/** How many of the samples hashed into `before` and `after` (HASH_BYTES each) differ. */
export function countChanged(before: Uint8Array, after: Uint8Array): number {
  if (before.length !== after.length || before.length % HASH_BYTES !== 0) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', 'the two hash passes must cover the same samples');
  }
  let changed = 0;
  for (let i = 0; i < before.length; i += HASH_BYTES) {
    for (let b = 0; b < HASH_BYTES; b++) {
      if (before[i + b] !== after[i + b]) {
        changed++;
        break;
      }
    }
  }
  return changed;
}

/**
 * The dirty rate from `pagesChanged` of `pagesSampled` (drawn without replacement from
 * `pageCount` pages of `memoryBytes`) over `windowMs`, with its standard error (see the header).
 */
export function estimateDirtyRate(input: {
  memoryBytes: number;
  pageCount: number;
  pagesSampled: number;
  pagesChanged: number;
  windowMs: number;
}): DirtyRateEstimate {
  const { memoryBytes, pageCount, pagesSampled: n, pagesChanged: k, windowMs } = input;
  if (!(n >= 1 && n <= pageCount && k >= 0 && k <= n && windowMs > 0)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `cannot estimate a dirty rate from ${k} of ${n} samples of ${pageCount} pages over ${windowMs} ms`,
    );
  }
  const p = k / n;
  const finite = pageCount > 1 ? (pageCount - n) / (pageCount - 1) : 0;
  const standardError = Math.sqrt(((p * (1 - p)) / n) * finite);
  const mbPerWindow = memoryBytes / MB / (windowMs / 1000);
  return {
    dirtyRateMBps: p * mbPerWindow,
    standardErrorMBps: standardError * mbPerWindow,
    pagesSampled: n,
    pagesChanged: k,
    windowMs,
  };
}

/**
 * With no sampled page changed, the rate (MB/s) the true one is below with 95% confidence: a
 * fraction of 3/n of memory over the window (the rule of three; with k > 0 use the standard error).
 */
export function rateUpperBound95(
  estimate: Pick<DirtyRateMeasurement, 'pagesSampled' | 'memoryBytes' | 'windowMs'>,
): number {
  return (Math.min(1, 3 / estimate.pagesSampled) * estimate.memoryBytes) / MB / (estimate.windowMs / 1000);
}

/**
 * Measure the dirty rate of `memory` as the header says: hash the sample, wait `calcTimeMs`, hash
 * it again. Only reads memory. Each pass yields to the event loop every HASH_CHUNK_PAGES pages.
 * Rejects with ERR_CANCELLED when `signal` aborts, and with ERR_VM_STATE when the memory was
 * released meanwhile (the VM was destroyed or migrated away).
 */
export async function measureDirtyRate(
  memory: SampledMemory,
  options: DirtyRateOptions = {},
  components: DirtyRateComponents = {},
): Promise<DirtyRateMeasurement> {
  const { calcTimeMs, samplePagesPerGiB, checkpoints } = resolveDirtyRateOptions(options);
  const now = components.now ?? (() => performance.now());
  const sleep = components.sleep ?? ((ms: number, signal?: AbortSignal) => sleepMs(ms, undefined, { signal }));
  const { signal } = components;
  const seed = components.seed ?? Math.floor(Math.random() * 2 ** 32);
  const count = samplePageCount(memory.bytes, memory.pageCount, samplePagesPerGiB, components.minSamplePages);
  const pages = choosePages(memory.pageCount, count, seed);
  const before = new Uint8Array(pages.length * HASH_BYTES);
  const after = new Uint8Array(pages.length * HASH_BYTES);

  const startedAt = (components.wallClock ?? Date.now)();
  const first = await timedPass(memory, pages, before, now, signal);
  const firstMid = (first.start + first.end) / 2;
  components.onFirstPass?.();
  const curve: DirtyCurvePoint[] = [];
  // Each pass is timed middle to middle from the first; a pass is assumed to take as long as the first.
  const passTo = async (windowMs: number): Promise<number> => {
    try {
      await sleep(Math.max(0, firstMid + windowMs - (first.end - first.start) / 2 - now()), signal);
    } catch (error) {
      throw cancelled(signal, error);
    }
    const pass = await timedPass(memory, pages, after, now, signal);
    return (pass.start + pass.end) / 2 - firstMid;
  };
  const measured = (windowMs: number, pagesChanged: number): DirtyRateMeasurement => ({
    ...estimateDirtyRate({
      memoryBytes: memory.bytes,
      pageCount: memory.pageCount,
      pagesSampled: pages.length,
      pagesChanged,
      windowMs,
    }),
    startedAt,
    memoryBytes: memory.bytes,
  });
  try {
    for (let c = checkpoints; c >= 1; c--) {
      const windowMs = await passTo(calcTimeMs / 2 ** c);
      const pagesChanged = countChanged(before, after);
      curve.push({ windowMs, pagesChanged });
      components.onCheckpoint?.({
        ...measured(windowMs, pagesChanged),
        curve: [...curve],
        zeroPagesSampled: countZero(before),
      });
    }
    const windowMs = await passTo(calcTimeMs);
    const pagesChanged = countChanged(before, after);
    if (checkpoints === 0) return measured(windowMs, pagesChanged);
    curve.push({ windowMs, pagesChanged });
  } catch (error) {
    // Cut short: the curve so far is a measurement over a shorter window, when asked for.
    const last = curve[curve.length - 1];
    if (!(components.keepPartial && last && error instanceof MigrationError && error.code === 'ERR_CANCELLED')) {
      throw error;
    }
  }
  const last = curve[curve.length - 1]!;
  return { ...measured(last.windowMs, last.pagesChanged), curve, zeroPagesSampled: countZero(before) };
}

/** How many of the hashes in `hashes` (HASH_BYTES each) are the hash of an all-zero page. */
function countZero(hashes: Uint8Array): number {
  const zero = hashPage(new Uint8Array(PAGE_BYTES));
  let count = 0;
  for (let i = 0; i < hashes.length; i += HASH_BYTES) {
    let same = true;
    for (let b = 0; b < HASH_BYTES && same; b++) same = hashes[i + b] === zero[b];
    if (same) count++;
  }
  return count;
}

/** One hash pass over the sample, in chunks with a yield between them; when it began and ended. */
async function timedPass(
  memory: SampledMemory,
  pages: Uint32Array,
  into: Uint8Array,
  now: () => number,
  signal: AbortSignal | undefined,
): Promise<{ start: number; end: number }> {
  const start = now();
  for (let from = 0; from < pages.length; from += HASH_CHUNK_PAGES) {
    if (from > 0) await new Promise((resolve) => setImmediate(resolve));
    if (signal?.aborted) throw cancelled(signal);
    try {
      hashSamples(memory, pages, into, from, Math.min(pages.length, from + HASH_CHUNK_PAGES));
    } catch (error) {
      if (error instanceof MigrationError && error.code === 'ERR_VM_STATE') {
        throw new MigrationError(
          'ERR_VM_STATE',
          'the VM was destroyed or migrated away during the dirty-rate measurement (its memory was released)',
          { cause: error },
        );
      }
      throw error;
    }
  }
  return { start, end: now() };
}

function cancelled(signal: AbortSignal | undefined, cause?: unknown): MigrationError {
  const reason: unknown = signal?.reason;
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new MigrationError('ERR_CANCELLED', `dirty-rate measurement cancelled: ${why}`, { cause: cause ?? reason });
}
