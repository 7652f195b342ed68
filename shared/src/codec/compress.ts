/**
 * Page-batch compression: the codecs, their synchronous forms (tests, tools, the destination's
 * cheap paths), and a cheap per-page "is it worth compressing" test. The asynchronous form that
 * keeps the event loop free is CompressPool (compress-pool.ts); both run compress-codecs.mjs.
 *
 * Flow: the source picks the pages of a batch that may shrink (looksCompressible() skips the
 * ones that look random: already compressed or encrypted data), concatenates them, compresses the
 * batch and compares sizes: if the result is not smaller than the input it sends the pages raw.
 * The destination decompresses a batch to exactly the length its page count says (hostile input
 * cannot make it allocate more) and copies the pages out.
 *
 * Codecs (measured here on 4 KiB pages of real text (READMEs, change logs), JavaScript code and
 * x86 machine code (the node binary), in batches of 64 pages, per core, on a 2-vCPU machine
 * shared with other work, several runs, so ±30%):
 *
 *     codec            compress MB/s  decompress MB/s  ratio (out/in): text / code / machine / mix
 *     lz4 (lz4-napi)     240–400        1300–1800        0.28 / 0.31 / 0.61 / 0.47
 *     brotli q1          155–300         190–460         0.20 / 0.21 / 0.49 / 0.36
 *     zstd-1 (1.2.2)      90–260         340–710         0.18 / 0.20 / 0.45 / 0.33
 *     deflate-1           55–155         190–410         0.21 / 0.23 / 0.48 / 0.37
 *     brotli q2 / q4     ~80 / ~48        ~250           mix 0.32–0.34 / 0.31–0.32
 *
 * Two codecs, because the link decides: a batch goes at min(codec speed, link speed ÷ ratio).
 *  - lz4 is the fast one: at 125 MB/s (1 Gbit/s) it gives ~265 MB/s of mixed pages (brotli
 *    ~200, CPU-bound). Worth it while the link is slower than lz4 itself (~300 MB/s per worker).
 *  - brotli (quality 1) is the dense one: on 12.5 MB/s (100 Mbit/s, the lab's wan) it moves
 *    ~34 MB/s of mixed pages where lz4 moves ~26. It wins below roughly 80–100 MB/s.
 *  - zstd (@mongodb-js/zstd 1.2.2; 7.x does not install here) packs ~10% more than brotli q1 at
 *    a similar speed, but has only an asynchronous API and its decompress() takes no output
 *    limit: a small hostile frame could expand to gigabytes before anything can stop it. Left
 *    out.
 *  - deflate (node:zlib level 1) is dominated by brotli q1: slower, no denser.
 *  node:zlib has no zstd on Node 20. Only lz4 needs a dependency (lz4-napi 2.10.0, prebuilt
 *  binaries from the npm registry, loads in worker threads).
 */
import { MigrationError } from '../errors.ts';
import { CODECS, DEFAULT_BROTLI_QUALITY, compressWith, decompressWith } from './compress-codecs.mjs';

export { DEFAULT_BROTLI_QUALITY };

/** A page-batch codec: 'lz4' (fast) or 'brotli' (dense). */
export type CompressionCodec = (typeof CODECS)[number];

/** Every codec, index = its wire id (0 = lz4, 1 = brotli). */
export const COMPRESSION_CODECS: readonly CompressionCodec[] = CODECS;

/** Largest batch compressSync/decompressSync (and CompressPool by default) take: 64 MiB. */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024;

/** Options of compressSync and CompressPool.compress. */
export interface CompressOptions {
  /** Brotli quality, 0 (fastest) to 11 (densest); lz4 has none. @default 1 */
  brotliQuality?: number;
}

/** True when `codec` names a codec this build knows (to validate a peer's choice). */
export function isCompressionCodec(codec: unknown): codec is CompressionCodec {
  return (CODECS as readonly unknown[]).includes(codec);
}

/**
 * `input` compressed with `codec` on the calling thread (use CompressPool on an agent's event
 * loop). The result may be larger than the input: compare and send raw then.
 * @throws ERR_INVALID_ARGUMENT for an unknown codec, a bad quality or an input over 64 MiB
 */
export function compressSync(
  input: Uint8Array,
  codec: CompressionCodec = 'lz4',
  options: CompressOptions = {},
): Uint8Array {
  checkCodec(codec);
  if (input.length > DEFAULT_MAX_BATCH_BYTES) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `compress: batch of ${input.length} bytes is over ${DEFAULT_MAX_BATCH_BYTES}`,
    );
  }
  const quality = checkQuality(options.brotliQuality ?? DEFAULT_BROTLI_QUALITY);
  try {
    return compressWith(codec, input, quality);
  } catch (error) {
    throw asMigrationError(error, 'ERR_INTERNAL');
  }
}

/**
 * `input` (a batch from the peer) decompressed with `codec` on the calling thread: exactly
 * `expectedLength` bytes. Never allocates from what the input declares: at most about twice
 * `expectedLength`. `expectedLength` must itself come from something the receiver checked (the
 * batch's page count, bounded by the frame limit).
 * @throws ERR_BAD_ENCODING when the input is not a valid batch of exactly `expectedLength` bytes,
 *         or `expectedLength` is over 64 MiB
 * @throws ERR_INVALID_ARGUMENT for an unknown codec
 */
export function decompressSync(input: Uint8Array, expectedLength: number, codec: CompressionCodec = 'lz4'): Uint8Array {
  checkCodec(codec);
  checkExpectedLength(expectedLength, DEFAULT_MAX_BATCH_BYTES);
  try {
    return decompressWith(codec, input, expectedLength);
  } catch (error) {
    throw asMigrationError(error, 'ERR_BAD_ENCODING');
  }
}

// Histogram of sampled byte values, reused (single-threaded callers).
const histogram = new Uint8Array(256);

/**
 * A cheap guess whether `page` compresses (~1.5 µs for 4 KiB): false when it looks random —
 * compressed, encrypted or random data, which no codec shrinks. It counts distinct values among
 * ~1024 evenly spaced bytes (every 4th of a 4 KiB page) and calls the page random when they reach
 * 90% of what random bytes give (256·(1 − e^(−samples/256)): ~251 of 256 for 1024 samples, so
 * the threshold is 226). Measured on 4 KiB pages: random 248–254 (5th–95th percentile), text
 * 29–71, JavaScript 51–69, machine code 117–168, lz4 output of text 150–177 (order-0 statistics
 * see its literals as text: called compressible though it shrinks little, which the batch-level
 * size comparison then catches). All-zero pages are not its business (send them as zero pages).
 */
export function looksCompressible(page: Uint8Array): boolean {
  const n = page.length;
  const step = n >= 2048 ? Math.floor(n / 1024) : 1;
  const h = histogram;
  h.fill(0);
  // Mark, then count: a loop of stores without a data-dependent branch (twice as fast).
  for (let i = 0; i < n; i += step) h[page[i]!] = 1;
  let distinct = 0;
  for (let v = 0; v < 256; v++) distinct += h[v]!;
  const samples = Math.ceil(n / step);
  return distinct < 0.9 * 256 * (1 - Math.exp(-samples / 256));
}

/** @internal Validates a codec name (a caller's or a peer's). */
export function checkCodec(codec: unknown): asserts codec is CompressionCodec {
  if (!isCompressionCodec(codec)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `unknown compression codec ${String(codec)} (known: ${CODECS.join(', ')})`,
    );
  }
}

/** @internal Validates a brotli quality. */
export function checkQuality(quality: number): number {
  if (!Number.isInteger(quality) || quality < 0 || quality > 11) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `brotli quality must be an integer from 0 to 11, not ${quality}`);
  }
  return quality;
}

/** @internal Validates the length a peer's batch must decompress to. */
export function checkExpectedLength(expectedLength: number, max: number): void {
  if (!Number.isInteger(expectedLength) || expectedLength < 0 || expectedLength > max) {
    throw new MigrationError(
      'ERR_BAD_ENCODING',
      `a compressed batch must decompress to 0–${max} bytes, not ${String(expectedLength)}`,
    );
  }
}

/** @internal An Error from compress-codecs.mjs (or the worker) as a MigrationError. */
export function asMigrationError(error: unknown, fallback: 'ERR_INTERNAL' | 'ERR_BAD_ENCODING'): MigrationError {
  if (error instanceof MigrationError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ERR_BAD_ENCODING' || code === 'ERR_INVALID_ARGUMENT')
    return new MigrationError(code, message, { cause: error });
  return new MigrationError(fallback, message, { cause: error });
}
