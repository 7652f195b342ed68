/**
 * The page encodings in the prediction model (issue 17): what a round's pages cost on the wire
 * and in time when they are compressed, sent as XBZRLE deltas or as dedup references. Pure.
 *
 * Compression changes the effective bandwidth. The engine compresses a batch in worker threads
 * while the link sends the last one (agent-source sections/ram/page-codecs.ts), so pages move at
 *
 *   page rate = min(codec speed × threads, link bandwidth ÷ ratio)          (compressedPageRate)
 *
 * — the link's bandwidth divided by the compression ratio (out ÷ in: 0.5 doubles it) until the
 * codec, not the link, is the bottleneck. The same formula as the engine's policy
 * (encoding-policy.ts compressedRate), restated here: a shared import would tie the packages.
 * `--compress auto` is modelled as the policy decides it: the codec with the best page rate, used
 * when that beats the link by COMPRESS_GAIN, none otherwise (on loopback, a link faster than any
 * codec, never). Left out: auto's warm-up stretch while it measures the link, its denser brotli
 * settings (MODELLED_LEVELS), and its switching to what a setting delivered once it ran.
 *
 * XBZRLE (`--xbzrle`) sends a re-sent page (rounds after the first, and the stop-and-copy) as a
 * delta against the copy the source's cache holds: deltaRatio × a page, for the share of the
 * re-sent pages the cache holds (cache bytes ÷ the bytes re-sent, at most all of them). Dedup
 * (`--dedup`) sends round 0's duplicate pages (dupFraction of the non-zero ones) as references.
 * `auto` for each is on below the policy's link thresholds (DELTA_MAX_LINK_BPS,
 * DEDUP_MAX_LINK_BPS). The encode time of deltas and hashes (≥ 0.6 GB/s per core) is left out:
 * both are used only on links slower than that.
 *
 * Where the figures come from (PageFigures): sampled from the VM's pages through the real codecs
 * (sample-pages.ts: `livemig compare` does this for each VM before it migrates), taken from an
 * earlier migration's `encodings` report (pageFiguresFromReport), or the priors below, which
 * `--dry-run` uses (it cannot see the VM's pages) and says so.
 */
import type { EncodingsReport } from '../report/types.ts';
import type { CodecFigures, PageFigures, TechniqueOptions } from './types.ts';

/** Wire bytes per page besides its payload (the page number and encoding in the batch's meta), and per zero page. */
export const PAGE_OVERHEAD_BYTES = 8;
/** A dedup reference's bytes beyond the page's own overhead: the page it refers to. */
export const DEDUP_REF_BYTES = 8;
/** Compression must promise this many times the raw rate to be used by auto (encoding-policy.ts COMPRESS_GAIN). */
export const COMPRESS_GAIN = 1.15;
/** auto uses deltas only on links slower than this, and references below the next (encoding-policy.ts). */
export const DELTA_MAX_LINK_BPS = 400e6;
export const DEDUP_MAX_LINK_BPS = 250e6;
/** `--xbzrle-cache` default (QEMU's xbzrle-cache-size is 64 MiB too). */
export const DEFAULT_XBZRLE_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * `--compress-threads` not given: compression starts with one worker, and a second joins once a
 * level is in use whose codec, not the link, sets the pace (compressThreadsFor). Two from the
 * start took a 1 GiB realistic VM over the 12 MB/s wan from 22.7 s to 21.5 s here, but the
 * second worker booting on loopback (where auto then turns compression off) cost up to 5 % there.
 */
export const DEFAULT_COMPRESS_THREADS = 1;
export const AUTO_COMPRESS_THREADS = 2;
/**
 * ... and only on a link measured at most this fast: there sending raw leaves the cores nearly
 * idle, so a second codec thread takes time from nobody; on a faster one (or a loopback measured
 * slow while it warms up: 100 MB/s in one suite run) it competes with the guest and the sender,
 * and a codec trial that a second thread flatters outlives the first, wrong, measure of the link.
 */
export const SECOND_THREAD_MAX_LINK_BPS = 50e6;

/**
 * The workers a level needs on this link, at most `max`: the fewest whose codec speed keeps up
 * with what the link takes of that level's output (link ÷ ratio), or `max` when none does.
 */
export function compressThreadsFor(figures: CodecFigures, linkBps: number, max: number): number {
  const need = linkBps / Math.max(figures.ratio, 1e-3);
  for (let n = 1; n < max; n++) if (figures.bps * n >= need) return n;
  return Math.max(1, max);
}

/** The most workers compression may use on a link of `linkBps`: as given, else as the engine grows (above). */
export function maxCompressThreads(options: TechniqueOptions | undefined, linkBps: number): number {
  return (
    options?.compressThreads ??
    (linkBps <= SECOND_THREAD_MAX_LINK_BPS ? AUTO_COMPRESS_THREADS : DEFAULT_COMPRESS_THREADS)
  );
}

/**
 * The priors, for when nothing of the VM's pages was measured: the codecs' speed per core and
 * ratio on `realistic` memory as measured on this machine (agent-source compress-levels.ts:
 * lz4 250 MB/s at 0.5, brotli quality 1 150 MB/s at 0.4 — made conservative there), no
 * duplicates (a reference is only predicted when measured), and a delta of a tenth of a page
 * (a hot-set write changes a few words of a page; XBZRLE codes each changed run in its bytes
 * plus two length bytes, so several writes per page per round give ≈ 5–15 % of a page).
 */
export const DEFAULT_PAGE_FIGURES: Readonly<PageFigures> = Object.freeze({
  codecs: Object.freeze({
    lz4: Object.freeze({ ratio: 0.5, bps: 250e6 }),
    brotli: Object.freeze({ ratio: 0.4, bps: 150e6 }),
  }),
  dupFraction: 0,
  deltaRatio: 0.1,
  source: 'priors (realistic memory, codec speeds measured on this machine)',
});

/** Pages' bytes per second a codec delivers over a link: min(codec speed × threads, link ÷ ratio). */
export function compressedPageRate(figures: CodecFigures, threads: number, linkBps: number): number {
  return Math.min(figures.bps * Math.max(1, threads), linkBps / Math.max(figures.ratio, 1e-3));
}

/**
 * The settings the model's `--compress auto` chooses among: each codec at its default setting
 * (lz4; brotli quality 1), with the figures measured for it. The engine's auto also tries denser
 * brotli qualities (2, 5: agent-source compress-levels.ts) and keeps one when it delivers more;
 * the model does not credit them: their gain is a prior there, and on `realistic` pages through
 * `livemig compare` (64 MiB over 25 MB/s) quality 2's blocks came to 0.36 of their input where
 * quality 1's came to 0.39 — a few per cent of the bytes, against 0.3 vs 0.4 in the priors.
 */
export const MODELLED_LEVELS: readonly { level: string; codec: 'lz4' | 'brotli' }[] = [
  { level: 'lz4', codec: 'lz4' },
  { level: 'brotli', codec: 'brotli' },
];

/** The encodings in force on a link: the compression setting (null: none) and its figures, deltas, references. */
export interface ActiveEncodings {
  /** A MODELLED_LEVELS level ('lz4', 'brotli'), or null. */
  codec: string | null;
  figures: CodecFigures | null;
  delta: boolean;
  dedup: boolean;
  /** Page bytes per second for pages that go through the codec (the link's rate when none). */
  pageRateBps: number;
}

/** A level's figures: its codec's in the pages' figures, the prior when the pages did not measure it. */
function levelFigures(level: (typeof MODELLED_LEVELS)[number], pages: PageFigures): CodecFigures {
  return pages.codecs[level.codec] ?? DEFAULT_PAGE_FIGURES.codecs[level.codec]!;
}

/** Which encodings the engine would use on a link of `linkBps` with these options and pages (see the header). */
export function activeEncodings(
  options: TechniqueOptions | undefined,
  pages: PageFigures,
  linkBps: number,
): ActiveEncodings {
  const threads = maxCompressThreads(options, linkBps);
  let codec: string | null = null;
  let figures: CodecFigures | null = null;
  let pageRateBps = linkBps;
  const mode = options?.compress;
  if (mode === 'lz4' || mode === 'brotli') {
    // Asked for: used whatever it costs (a codec slower than the link slows the migration down).
    codec = mode;
    figures = levelFigures(
      MODELLED_LEVELS.find((l) => l.level === mode)!,
      pages,
    );
    pageRateBps = compressedPageRate(figures, threads, linkBps);
  } else if (mode === 'auto') {
    // The level with the best page rate, when it beats raw by COMPRESS_GAIN; codecs the pages did
    // not measure are left out (auto is predicted only from what is known of this VM).
    for (const level of MODELLED_LEVELS.filter((l) => pages.codecs[l.codec] !== undefined)) {
      const f = levelFigures(level, pages);
      const rate = compressedPageRate(f, threads, linkBps);
      if (rate >= COMPRESS_GAIN * linkBps && rate > pageRateBps) {
        codec = level.level;
        figures = f;
        pageRateBps = rate;
      }
    }
  }
  const on = (m: 'auto' | 'on' | 'off' | undefined, below: number) => m === 'on' || (m === 'auto' && linkBps < below);
  return {
    codec,
    figures,
    delta: on(options?.xbzrle, DELTA_MAX_LINK_BPS),
    dedup: on(options?.dedup, DEDUP_MAX_LINK_BPS),
    pageRateBps,
  };
}

/** What sending some pages costs: bytes on the wire, and seconds. */
export interface SendCost {
  wireBytes: number;
  seconds: number;
}

/**
 * Sending `pageBytes` of non-zero pages and `zeroPages` zero ones over `bandwidthBps`: round 0
 * (`resend` false) may send duplicates as references, a re-send may send deltas; what is left
 * goes through the codec when one is in force. Time: the wire at the link's rate, or the codec's
 * work, whichever is longer (they overlap). With no encoding this is exactly the model's raw
 * cost: pageBytes × (1 + 8 / page size) + 8 per zero page, at the link's rate.
 */
export function sendCost(
  send: { pageBytes: number; zeroPages: number; resend: boolean },
  active: ActiveEncodings,
  pages: PageFigures,
  options: TechniqueOptions | undefined,
  pageSize: number,
  bandwidthBps: number,
): SendCost {
  const B = Math.max(1, bandwidthBps);
  const { pageBytes, zeroPages } = send;
  if (!active.figures && !active.delta && !active.dedup) {
    const wireBytes = pageBytes * (1 + PAGE_OVERHEAD_BYTES / pageSize) + zeroPages * PAGE_OVERHEAD_BYTES;
    return { wireBytes, seconds: wireBytes / B };
  }
  let wire = (pageBytes / pageSize + zeroPages) * PAGE_OVERHEAD_BYTES;
  let rest = pageBytes;
  if (active.dedup && !send.resend) {
    const dup = rest * Math.min(1, Math.max(0, pages.dupFraction));
    wire += (dup / pageSize) * DEDUP_REF_BYTES;
    rest -= dup;
  }
  if (active.delta && send.resend && rest > 0) {
    const cache = options?.xbzrleCacheBytes ?? DEFAULT_XBZRLE_CACHE_BYTES;
    const hit = rest * Math.min(1, cache / rest);
    wire += hit * Math.min(1, Math.max(0, pages.deltaRatio));
    rest -= hit;
  }
  let cpuSeconds = 0;
  if (active.figures) {
    wire += rest * active.figures.ratio;
    cpuSeconds = rest / (active.figures.bps * maxCompressThreads(options, B));
  } else {
    wire += rest;
  }
  return { wireBytes: wire, seconds: Math.max(wire / B, cpuSeconds) };
}

/**
 * The pages' figures an earlier migration measured, from its `encodings` report: each codec's
 * ratio (output ÷ input of its blocks; pages the engine did not compress count as sent whole,
 * so the ratio is over every non-zero page it sent) and speed (input ÷ the threads' busy time),
 * the share of its non-zero pages sent as references, and its deltas' mean size. A figure the
 * report cannot give (a codec not used, no delta sent) is taken from `fallback`.
 */
export function pageFiguresFromReport(
  encodings: EncodingsReport,
  sent: { nonZeroPages: number; pageSize: number; codec?: 'lz4' | 'brotli' },
  fallback: PageFigures = DEFAULT_PAGE_FIGURES,
): PageFigures {
  const { nonZeroPages, pageSize } = sent;
  const codecs = { ...fallback.codecs };
  const c = encodings.compression;
  const codec = sent.codec ?? (c?.mode === 'lz4' || c?.mode === 'brotli' ? c.mode : undefined);
  if (c && codec && c.inputBytes > 0 && nonZeroPages > 0) {
    const all = nonZeroPages * pageSize;
    const busySeconds = c.busyMs.reduce((a, b) => a + b, 0) / 1000;
    codecs[codec] = {
      ratio: Math.min(1, (c.outputBytes + Math.max(0, all - c.inputBytes)) / all),
      bps:
        busySeconds > 0
          ? c.inputBytes / busySeconds
          : (fallback.codecs[codec]?.bps ?? DEFAULT_PAGE_FIGURES.codecs[codec]!.bps),
    };
  }
  const x = encodings.xbzrle;
  return {
    codecs,
    dupFraction:
      encodings.dedup && nonZeroPages > 0 ? Math.min(1, encodings.dedup.pages / nonZeroPages) : fallback.dupFraction,
    deltaRatio: x && x.pages > 0 ? Math.min(1, x.bytes / (x.pages * pageSize)) : fallback.deltaRatio,
    source: 'an earlier migration’s encodings report',
  };
}
