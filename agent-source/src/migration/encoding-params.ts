/**
 * The page-encoding knobs of one migration (issue 17), checked: `xbzrle` and `dedup` on, off or
 * auto, `compress` a codec, off or auto (auto chooses from measurements: encoding-policy.ts),
 * the delta cache's size (QEMU's xbzrle-cache-size) and the compression threads (QEMU's
 * multifd-zlib/zstd channels). Every bad value is ERR_INVALID_ARGUMENT naming the knob.
 */
import { MigrationError } from '@livemig/shared';
import { COMPRESSION_CODECS } from '@livemig/shared/codec';
import type { MigrateParams } from '@livemig/shared/control';
import {
  DEFAULT_ENCODING_PARAMS,
  type CompressMode,
  type EncodingMode,
  type EncodingParams,
} from './sections/ram/encoding-policy.ts';

/** The delta cache's bounds: a page, and a quarter of the largest VM (16 GiB). */
export const MIN_XBZRLE_CACHE_BYTES = 4096;
export const MAX_XBZRLE_CACHE_BYTES = 4 * 1024 ** 3;
/** Compression threads: this machine has two cores; a larger host may use more. */
export const MAX_COMPRESS_THREADS = 16;

const MODES: readonly EncodingMode[] = ['auto', 'on', 'off'];
const COMPRESS_MODES: readonly CompressMode[] = ['auto', 'off', ...COMPRESSION_CODECS];

function invalid(text: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', text);
}

export type EncodingKnobs = Pick<
  MigrateParams,
  'xbzrle' | 'xbzrleCacheBytes' | 'dedup' | 'compress' | 'compressThreads'
>;

export function resolveEncodingParams(knobs: EncodingKnobs): EncodingParams {
  const d = DEFAULT_ENCODING_PARAMS;
  const delta = knobs.xbzrle ?? d.delta;
  if (!MODES.includes(delta)) throw invalid(`xbzrle must be one of ${MODES.join(', ')}, got "${String(delta)}"`);
  const dedup = knobs.dedup ?? d.dedup;
  if (!MODES.includes(dedup)) throw invalid(`dedup must be one of ${MODES.join(', ')}, got "${String(dedup)}"`);
  const compress = knobs.compress ?? d.compress;
  if (!COMPRESS_MODES.includes(compress)) {
    throw invalid(`compress must be one of ${COMPRESS_MODES.join(', ')}, got "${String(compress)}"`);
  }
  const cache = knobs.xbzrleCacheBytes ?? d.xbzrleCacheBytes;
  if (!(Number.isSafeInteger(cache) && cache >= MIN_XBZRLE_CACHE_BYTES && cache <= MAX_XBZRLE_CACHE_BYTES)) {
    throw invalid(`xbzrle-cache must be a whole number of bytes in 4KiB..4GiB, got ${String(cache)}`);
  }
  if (knobs.xbzrleCacheBytes !== undefined && delta === 'off') {
    throw invalid('xbzrle-cache applies with xbzrle on or auto only');
  }
  const threads = knobs.compressThreads ?? d.compressThreads;
  if (!(Number.isSafeInteger(threads) && threads >= 1 && threads <= MAX_COMPRESS_THREADS)) {
    throw invalid(`compress-threads must be a whole number in 1..${MAX_COMPRESS_THREADS}, got ${String(threads)}`);
  }
  if (knobs.compressThreads !== undefined && compress === 'off') {
    throw invalid('compress-threads applies with compress on or auto only');
  }
  // Given, the count is fixed; not given, compression may grow to AUTO_COMPRESS_THREADS (the default's).
  const maxThreads = knobs.compressThreads ?? d.maxCompressThreads ?? threads;
  return { delta, dedup, compress, xbzrleCacheBytes: cache, compressThreads: threads, maxCompressThreads: maxThreads };
}
