/**
 * The pages' figures for the model's encodings (encodings.ts PageFigures), measured on pages of
 * the VM: each codec's ratio through the real codec (shared/src/codec, what the engine's workers
 * run), the share of duplicates, and — timed, so not pure — each codec's speed on this host.
 *
 * `codecFiguresOf(pages)` is pure: it compresses the pages as the engine does — batches of 256
 * (PAGES_PER_BATCH), all-zero pages left out (they go as zero records), the pages that look
 * random skipped (looksCompressible, as the engine does), a block that does not shrink by 5 %
 * sent raw — and gives the codec's ratio over all the non-zero pages (what compression makes of
 * the bytes the link would carry), and the share of non-zero pages whose content an earlier page
 * of the sample had. A sample is smaller than the VM, so it sees fewer repeats than round 0
 * does: the duplicate share is a lower bound (dedup is predicted to save at least that).
 *
 * `samplePages(init, seed, bytes)` builds the first pages of a VM of that init and seed: page n
 * of an init depends only on (seed, n, init) (vm/init.ts), and kinds are drawn by a hash of n,
 * so a prefix is a fair sample of the VM's initial memory. Its writes since boot are not in
 * it: the workloads keep the pages' character (a write changes a few words), so the ratio holds.
 */
import { createHash } from 'node:crypto';
import { compressSync, looksCompressible, type CompressionCodec } from '../codec/compress.ts';
import { GuestMemory } from '../vm/guest-memory.ts';
import { initialiseMemory, type InitSpec } from '../vm/init.ts';
import { DEFAULT_PAGE_FIGURES } from './encodings.ts';
import type { CodecFigures, PageFigures } from './types.ts';

/** Pages per compressed block, as the engine batches them (agent-source page-sender.ts PAGES_PER_BATCH). */
export const SAMPLE_BATCH_PAGES = 256;
/** A block sent compressed must shrink below this share of its input (the engine's 5 %). */
const SHRINK = 0.95;
/** How much of a VM `livemig compare` samples: 8 MiB, 2048 pages (a few tens of ms per codec). */
export const DEFAULT_SAMPLE_BYTES = 8 * 1024 * 1024;

function isZero(page: Uint8Array): boolean {
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}

/** What compressing `pages` with `codec` gives: output ÷ input over the non-zero pages, and the input the codec saw. */
export function codecRatioOf(
  pages: readonly Uint8Array[],
  codec: CompressionCodec,
): { ratio: number; compressedInputBytes: number } {
  let all = 0;
  let out = 0;
  let input = 0;
  for (let at = 0; at < pages.length; at += SAMPLE_BATCH_PAGES) {
    const batch = pages.slice(at, at + SAMPLE_BATCH_PAGES).filter((p) => !isZero(p));
    const compressible = batch.filter(looksCompressible);
    const bytes = batch.reduce((a, p) => a + p.length, 0);
    all += bytes;
    const offered = compressible.reduce((a, p) => a + p.length, 0);
    if (offered === 0) {
      out += bytes;
      continue;
    }
    const block = compressSync(Buffer.concat(compressible), codec);
    input += offered;
    out += bytes - offered + (block.length < SHRINK * offered ? block.length : offered);
  }
  return { ratio: all === 0 ? 1 : out / all, compressedInputBytes: input };
}

/** The share of the non-zero pages whose content an earlier page of `pages` had (SHA-256, as the engine's index). */
export function duplicateShare(pages: readonly Uint8Array[]): number {
  const seen = new Set<string>();
  let nonZero = 0;
  let dup = 0;
  for (const page of pages) {
    if (isZero(page)) continue;
    nonZero++;
    const key = createHash('sha256').update(page).digest('base64');
    if (seen.has(key)) dup++;
    else seen.add(key);
  }
  return nonZero === 0 ? 0 : dup / nonZero;
}

/**
 * The pages' figures from a sample (pure but for `speeds`): each codec's ratio through the real
 * codec, the duplicate share, the codecs' speeds as given (measured: sampleCodecFigures; else the
 * priors), and the delta ratio of the priors (a delta needs two versions of a page to measure).
 */
export function codecFiguresOf(
  pages: readonly Uint8Array[],
  speeds: Partial<Record<CompressionCodec, number>> = {},
  source = `${pages.length} sampled pages`,
): PageFigures {
  const codecs: Partial<Record<CompressionCodec, CodecFigures>> = {};
  for (const codec of ['lz4', 'brotli'] as const) {
    const { ratio } = codecRatioOf(pages, codec);
    codecs[codec] = { ratio, bps: speeds[codec] ?? DEFAULT_PAGE_FIGURES.codecs[codec]!.bps };
  }
  return { codecs, dupFraction: duplicateShare(pages), deltaRatio: DEFAULT_PAGE_FIGURES.deltaRatio, source };
}

/** The first `bytes` of a VM's initial memory (init and seed as it was created with), as pages. */
export async function samplePages(init: InitSpec, seed: number, bytes = DEFAULT_SAMPLE_BYTES): Promise<Uint8Array[]> {
  const memory = GuestMemory.allocate(bytes);
  try {
    await initialiseMemory(memory, init, seed);
    return Array.from({ length: memory.pageCount }, (_, n) => Uint8Array.from(memory.page(n)));
  } finally {
    memory.release();
  }
}

/**
 * The figures for a VM's pages, with each codec's speed timed here on the same pages (input
 * bytes ÷ the time compressSync took; the engine's workers run the same code). A codec that saw
 * less than 1 MiB to compress (random memory) keeps the prior speed: it is not used anyway.
 */
export function sampleCodecFigures(pages: readonly Uint8Array[], source: string): PageFigures {
  const speeds: Partial<Record<CompressionCodec, number>> = {};
  for (const codec of ['lz4', 'brotli'] as const) {
    // Once untimed: lz4's native module loads on first use (timed, it made lz4 look 8× slower).
    compressSync(new Uint8Array(4096).fill(7), codec);
    const started = performance.now();
    const { compressedInputBytes } = codecRatioOf(pages, codec);
    const seconds = (performance.now() - started) / 1000;
    if (compressedInputBytes >= 1 << 20 && seconds > 0) speeds[codec] = compressedInputBytes / seconds;
  }
  return codecFiguresOf(pages, speeds, source);
}
