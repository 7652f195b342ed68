/**
 * The compression settings `--compress auto` chooses among (issue 17): a codec, and for brotli a
 * quality. The wire only names the codec (a brotli stream decodes the same whatever quality made
 * it), so a level is the source's business alone.
 *
 * Why levels: a link, not the CPU, sets the pace on a slow link, so a denser setting moves more
 * pages per second as long as the codec keeps up. Measured here (2 cores, Node 20, 256-page
 * batches of `realistic` text, code and duplicate pages, one core):
 *
 *     level      MB/s in   out ÷ in
 *     lz4         ~300      ~0.45
 *     brotli:1     175       0.26
 *     brotli:2     122       0.18
 *     brotli:4      66       0.17
 *     brotli:5      40       0.15
 *
 * brotli:2 takes 30 % off brotli:1's output for 30 % of its speed; quality 3–4 add little for
 * half the speed again; 5 another 15 % for a third. Over the lab's wan (12 MB/s) one core of
 * brotli:2 still outruns the link (122 MB/s in vs 12 ÷ 0.18 = 67 MB/s of pages it can carry).
 * The priors below are these figures made conservative (a batch also carries incompressible
 * pages); once a level has run, its own measurements replace them, and a level not run yet is
 * predicted from a sibling that has (same codec) scaled by their priors' ratio.
 */
import type { CompressionCodec } from '@livemig/shared/codec';
import type { CompressMode } from './encoding-policy.ts';

/** A codec at a setting. `brotli` is quality 1 (what `--compress brotli` asks for). */
export type CompressLevel = 'lz4' | 'brotli' | 'brotli:2' | 'brotli:5';

/** A level's speed per thread (input bytes/s) and output ÷ input. */
export interface CodecFigures {
  bps: number;
  ratio: number;
}

export interface LevelSpec {
  codec: CompressionCodec;
  /** Brotli's quality; lz4 has none. */
  quality?: number;
  /** Before it has run here (see the header). */
  prior: CodecFigures;
}

export const COMPRESS_LEVELS: Readonly<Record<CompressLevel, LevelSpec>> = Object.freeze({
  lz4: { codec: 'lz4', prior: { bps: 250e6, ratio: 0.5 } },
  brotli: { codec: 'brotli', quality: 1, prior: { bps: 150e6, ratio: 0.4 } },
  'brotli:2': { codec: 'brotli', quality: 2, prior: { bps: 105e6, ratio: 0.3 } },
  'brotli:5': { codec: 'brotli', quality: 5, prior: { bps: 35e6, ratio: 0.25 } },
});

/** Every level, fastest first. */
export const ALL_LEVELS = Object.keys(COMPRESS_LEVELS) as CompressLevel[];

/** The levels a `--compress` mode lets the policy use: all for auto, the codec's default for a codec, none for off. */
export function levelsFor(mode: CompressMode): CompressLevel[] {
  return mode === 'auto' ? [...ALL_LEVELS] : mode === 'off' ? [] : [mode];
}

/** Each level's priors. */
export const LEVEL_PRIORS: Readonly<Record<CompressLevel, CodecFigures>> = Object.freeze(
  Object.fromEntries(ALL_LEVELS.map((level) => [level, COMPRESS_LEVELS[level].prior])) as Record<
    CompressLevel,
    CodecFigures
  >,
);

/** What a level measured here: its ratio from its first block, its speed once it compressed enough. */
export interface MeasuredLevel {
  ratio: number;
  bps?: number;
}

/**
 * Figures for every level: measured where a level ran (`measured`), else its prior scaled by what
 * a measured sibling of the same codec showed of its own prior (the relation of a dense brotli to
 * a fast one holds across memory contents far better than either figure alone). Speed scales in
 * proportion; the ratio as a power, r ↦ r^(ln prior ÷ ln sibling's prior), so that memory
 * measured incompressible (1) stays incompressible at every level, where a proportion would
 * promise quality 5 a 0.6 on random pages. Measured here: brotli 0.26 predicts brotli:2 at 0.17
 * (it did 0.18), 0.40 (with random pages) predicts 0.30 (it did 0.33).
 */
export function levelFigures(measured: ReadonlyMap<CompressLevel, MeasuredLevel>): Record<CompressLevel, CodecFigures> {
  const out = {} as Record<CompressLevel, CodecFigures>;
  for (const level of ALL_LEVELS) {
    const { codec, prior } = COMPRESS_LEVELS[level];
    const own = measured.get(level);
    const sibling = ALL_LEVELS.find((l) => l !== level && COMPRESS_LEVELS[l].codec === codec && measured.has(l));
    const s = sibling === undefined ? undefined : measured.get(sibling);
    const sp = sibling === undefined ? prior : COMPRESS_LEVELS[sibling].prior;
    out[level] = {
      bps: own?.bps ?? (s?.bps === undefined ? prior.bps : s.bps * (prior.bps / sp.bps)),
      ratio:
        own?.ratio ??
        (s === undefined ? prior.ratio : Math.min(1, s.ratio ** (Math.log(prior.ratio) / Math.log(sp.ratio)))),
    };
  }
  return out;
}
