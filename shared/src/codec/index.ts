/**
 * Page codecs (issue 17): fewer bytes per page on the wire. Pure functions and small classes,
 * no I/O except CompressPool's worker threads; the migration engine wires them in.
 *
 * - xbzrle.ts: XBZRLE deltas of a page against its last-sent version (encode on the source,
 *   decode in place on the destination; hostile deltas rejected with ERR_BAD_ENCODING).
 * - delta-cache.ts: the source's bounded cache of last-sent pages (`--xbzrle-cache`), with
 *   QEMU's statistics; DeltaCache.encode() / encodeWithCache() pick delta or raw per page.
 * - dedup-index.ts: content hash (SHA-256) → a page the destination already holds with
 *   that content, for sending references instead of bytes.
 * - host-content.ts: the destination's snapshot of content its other VMs hold (`dedup-host`),
 *   offered to the source as hashes; references to it copy from the snapshot.
 * - compress.ts: the batch codecs (lz4 fast, brotli dense), synchronous forms and a per-page
 *   "looks compressible" test; compress-pool.ts runs them in worker threads.
 */
export * from './xbzrle.ts';
export * from './delta-cache.ts';
export * from './dedup-index.ts';
export * from './host-content.ts';
export {
  COMPRESSION_CODECS,
  DEFAULT_BROTLI_QUALITY,
  DEFAULT_MAX_BATCH_BYTES,
  compressSync,
  decompressSync,
  isCompressionCodec,
  looksCompressible,
  type CompressOptions,
  type CompressionCodec,
} from './compress.ts';
export * from './compress-pool.ts';
