/**
 * Which page encodings to use for the next batches, from what was measured (pure; issue 17):
 * compress when the link, not the CPU, is the bottleneck; deltas and references when the link is
 * slow enough that encoding a page costs less than sending it.
 *
 *   compress  per level (a codec at a setting: compress-levels.ts), pages per second =
 *             min(codec speed × threads, link ÷ ratio), or what the level delivered once it ran;
 *             threads: those the chosen level needs to keep up with the link, up to the most
 *             allowed (a second worker starts only where the codec, not the link, is the limit);
 *             the best level is used when it beats sending raw (the link's rate) by COMPRESS_GAIN;
 *             on a link faster than any codec (loopback) that never happens: auto costs nothing
 *   delta     from round 1 (round 0 too when the VM fits the cache: every page is then a base),
 *             below DELTA_MAX_LINK_BPS — an XBZRLE encode runs at ≥ 0.6 GB/s per core, so on a
 *             faster link the copy and encode would be most of a page's cost
 *   dedup     below DEDUP_MAX_LINK_BPS: every page is hashed (SHA-256, ~1.1 GB/s per core on
 *             the main thread), worth it only where that is a fraction of the send
 *
 * Until the link has been measured (a stretch of LINK_PROBE_BYTES sent raw, after the first
 * one, a warm-up that measures socket buffers filling, not the link) auto uses nothing, except
 * lz4 in the warm-up: it measures nothing anyway, lz4 runs in a worker beside the send at
 * several times a fast link's page rate, and on a slow link it halves those first bytes (0.35 s
 * of the wan's 12 MB/s). A fixed `on`/codec is used from the start, and `off` never.
 */
import { formatRate } from '@livemig/shared';
import {
  AUTO_COMPRESS_THREADS,
  COMPRESS_GAIN,
  compressThreadsFor,
  DEDUP_MAX_LINK_BPS,
  DEFAULT_COMPRESS_THREADS,
  DEFAULT_XBZRLE_CACHE_BYTES,
  DELTA_MAX_LINK_BPS,
  SECOND_THREAD_MAX_LINK_BPS,
} from '@livemig/shared/predict';
import type { CodecFigures, CompressLevel } from './compress-levels.ts';
import type { ActiveEncodings } from './page-codecs.ts';

/** `--xbzrle` / `--dedup`: on, off, or chosen from measurements. */
export type EncodingMode = 'auto' | 'on' | 'off';
/** `--compress`: a codec (at its default setting), off, or chosen from measurements. */
export type CompressMode = 'auto' | 'off' | 'lz4' | 'brotli';

/** The encoding knobs of one migration. */
export interface EncodingParams {
  delta: EncodingMode;
  dedup: EncodingMode;
  compress: CompressMode;
  /** `--xbzrle-cache`: bytes of page copies the source keeps for deltas. */
  xbzrleCacheBytes: number;
  /** `--compress-threads`: worker threads compressing (at first, when maxCompressThreads is larger). */
  compressThreads: number;
  /**
   * The most workers compression may grow to: `--compress-threads` when given (fixed), else
   * AUTO_COMPRESS_THREADS, reached only when the level in use is held back by its codec.
   * @default compressThreads
   */
  maxCompressThreads?: number;
}

/**
 * Compression is chosen from measurements by default (it turns itself off on a fast link or
 * incompressible memory); deltas and references are off unless asked for, as QEMU's xbzrle
 * capability is: they keep a model of the destination's memory (a 64 MiB cache, an index).
 */
export const DEFAULT_ENCODING_PARAMS: Readonly<EncodingParams> = Object.freeze({
  delta: 'off',
  dedup: 'off',
  compress: 'auto',
  xbzrleCacheBytes: DEFAULT_XBZRLE_CACHE_BYTES,
  compressThreads: DEFAULT_COMPRESS_THREADS,
  maxCompressThreads: AUTO_COMPRESS_THREADS,
});

/** Another level must promise this many times the current one's rate to replace it (no flapping). */
export const LEVEL_SWITCH_GAIN = 1.1;
// The thresholds (COMPRESS_GAIN; deltas below DELTA_MAX_LINK_BPS, references below
// DEDUP_MAX_LINK_BPS) and the defaults are the model's (shared/src/predict/encodings.ts), so that
// what it predicts and what the engine does cannot drift apart.
export { COMPRESS_GAIN, DEDUP_MAX_LINK_BPS, DELTA_MAX_LINK_BPS };
/** Raw bytes sent before auto trusts its measure of the link. */
export const LINK_PROBE_BYTES = 8 * 1024 * 1024;
/**
 * Raw delivered at least this fast: the CPUs, not the wire, set the pace (loopback), and a level
 * on trial that falls behind raw is cut short (page-sender.ts). Below it nothing is cut: a trial's
 * first batches queue behind the megabytes of raw pages still in the socket buffers and the
 * relay, so a quarter stretch measured the backlog draining — on the wan (12 MB/s) every level
 * once "delivered" less than raw that way, compression stayed off for the rest of round 0, and
 * a 1 GiB VM took 56 s instead of 25 (1 run in 5, and the bench's).
 */
export const TRIAL_CUT_MIN_RAW_BPS = 100e6;
/**
 * Below TRIAL_CUT_MIN_RAW_BPS a level's delivered figure is trusted for this many page bytes
 * sent after it was measured, then forgotten (the model's figure stands in until it runs again):
 * one bad stretch must not switch compression off for good. The level in use is re-measured every
 * stretch, so it is never stale for long; one just switched back to keeps its model figure until
 * its stretch is done (its stale figure kept would have it flap with the last level every batch).
 */
export const REMEASURE_CONTENT_BYTES = 64 * 1024 * 1024;

/**
 * Raw stretches the link's figure is the median of. One stretch is one sample of a noisy rate:
 * on loopback the CPUs set the pace, and a stretch that ran beside another process's burst measured
 * 160 MB/s between two of 385 and 411. Taken alone, that one sample turned lz4 on (198 MB/s
 * of pages beat it), and raw, no longer sent, was never measured again: the migration compressed
 * for 21 MiB on a link where compressing halves the rate. A median of three ignores one such
 * stretch and follows a lasting change after two.
 */
export const RAW_SAMPLES = 3;

/** The median of the last RAW_SAMPLES of `samples` (the mean of the middle two of an even count). */
export function recentMedian(samples: readonly number[]): number {
  const recent = samples.slice(-RAW_SAMPLES).sort((a, b) => a - b);
  if (recent.length === 0) throw new RangeError('recentMedian: no samples');
  const mid = recent.length >> 1;
  return recent.length % 2 === 1 ? recent[mid]! : (recent[mid - 1]! + recent[mid]!) / 2;
}

/**
 * The delivered figures the policy may judge levels by (`delivered[mode] = { bps, at }`, `at`: page
 * bytes sent when measured; `sent`: page bytes sent now): raw always; a level while fresh (see
 * REMEASURE_CONTENT_BYTES), and always on a fast link.
 */
export function trustedDelivered(
  delivered: ReadonlyMap<string, { bps: number; at: number }>,
  sent: number,
): Record<string, number> {
  const raw = delivered.get('raw')?.bps;
  const fast = raw !== undefined && raw >= TRIAL_CUT_MIN_RAW_BPS;
  const out: Record<string, number> = {};
  for (const [mode, { bps, at }] of delivered) {
    if (mode === 'raw' || fast || sent - at < REMEASURE_CONTENT_BYTES) out[mode] = bps;
  }
  return out;
}

export interface PolicyInput {
  params: EncodingParams;
  /** The link's rate for page data, bytes/s; null until measured. */
  linkBps: number | null;
  /** Each level's figures (compress-levels.ts levelFigures). */
  codecs: Readonly<Record<CompressLevel, CodecFigures>>;
  /** The levels auto may choose among (what was negotiated). @default every level in `codecs` */
  levels?: readonly CompressLevel[];
  /** The level the last batches used, if any. */
  current?: CompressLevel | null;
  /**
   * Pages' bytes delivered per second as measured in this migration, raw (`raw`) and per level:
   * once measured, a level is judged by what it delivered, not by the model.
   */
  delivered?: Readonly<Record<string, number>>;
  round: number;
  /** The migration's first stretch, whose rate is not a measure of the link (see the header). */
  warmingUp?: boolean;
  /** The VM's memory fits the delta cache (so round 0's pages are worth caching). */
  fitsCache: boolean;
}

export interface EncodingChoice extends ActiveEncodings {
  /** One line: what was chosen and from which figures. */
  why: string;
  /** Compression workers the chosen level needs on this link (compressThreadsFor); absent without compression. */
  compressThreads?: number;
}

/** Pages' bytes per second that `codec` would deliver over a link of `linkBps`. */
export function compressedRate(figures: CodecFigures, threads: number, linkBps: number): number {
  return Math.min(figures.bps * threads, linkBps / Math.max(figures.ratio, 1e-3));
}

export function chooseEncodings(input: PolicyInput): EncodingChoice {
  const { params, linkBps, codecs, round } = input;
  let threads: number | undefined;
  const known = linkBps !== null;
  const link = linkBps ?? Infinity;
  // Not given, a second worker only on a slow link (SECOND_THREAD_MAX_LINK_BPS: the model's rule).
  const maxThreads =
    link <= SECOND_THREAD_MAX_LINK_BPS ? (params.maxCompressThreads ?? params.compressThreads) : params.compressThreads;
  const delta =
    params.delta === 'on' ||
    (params.delta === 'auto' && known && link < DELTA_MAX_LINK_BPS && (round >= 1 || input.fitsCache));
  const dedup = params.dedup === 'on' || (params.dedup === 'auto' && known && link < DEDUP_MAX_LINK_BPS);
  let compress: CompressLevel | null = null;
  let compressWhy = 'compress off';
  if (params.compress === 'lz4' || params.compress === 'brotli') {
    compress = params.compress;
    compressWhy = `compress ${compress} (asked)`;
  } else if (params.compress === 'auto' && known) {
    // Each level's pages per second: what it delivered once it ran (on loopback the CPUs, not the
    // wire, set the pace: the model cannot see that, the measure can), else what the model says
    // from its speed and ratio as measured (or predicted from a sibling). The best is used when
    // it beats raw by COMPRESS_GAIN; the one in use is kept unless another beats it by
    // LEVEL_SWITCH_GAIN. A level modelled above the best measured one gets tried: that is how a
    // denser level is found when the CPU has room.
    const raw = input.delivered?.raw ?? link;
    const rateOf = (level: CompressLevel): number =>
      (input.delivered?.raw !== undefined ? input.delivered[level] : undefined) ??
      compressedRate(codecs[level], maxThreads, link);
    const levels = input.levels ?? (Object.keys(codecs) as CompressLevel[]);
    let best: { level: CompressLevel; rate: number } | null = null;
    for (const level of levels) {
      const rate = rateOf(level);
      if (best === null || rate > best.rate) best = { level, rate };
    }
    const current = input.current;
    if (best !== null && current && current !== best.level && levels.includes(current)) {
      const kept = rateOf(current);
      if (best.rate < kept * LEVEL_SWITCH_GAIN && kept >= COMPRESS_GAIN * raw) best = { level: current, rate: kept };
    }
    if (best !== null && best.rate >= COMPRESS_GAIN * raw) {
      compress = best.level;
      threads = compressThreadsFor(codecs[best.level], link, maxThreads);
      compressWhy = `compress ${best.level}: ${formatRate(best.rate)} of pages vs ${formatRate(raw)} raw`;
    } else if (best !== null) {
      compressWhy = `no compression: ${best.level} would give ${formatRate(best.rate)} of pages, raw ${formatRate(raw)}`;
    }
  } else if (params.compress === 'auto' && input.warmingUp && (input.levels ?? ['lz4']).includes('lz4')) {
    compress = 'lz4';
    compressWhy = 'compress lz4 while warming up (the link is measured after)';
  } else if (params.compress === 'auto') {
    compressWhy = 'no compression until the link is measured';
  }
  const why = `link ${known ? formatRate(link) : 'not measured yet'}; delta ${delta ? 'on' : 'off'}, dedup ${dedup ? 'on' : 'off'}, ${compressWhy}`;
  return { delta, dedup, compress, why, ...(threads === undefined ? {} : { compressThreads: threads }) };
}
