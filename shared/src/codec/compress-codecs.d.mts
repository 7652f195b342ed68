/** Types of compress-codecs.mjs (plain JavaScript, so the compress worker runs it without a loader). */

/** The codecs, in the order of their wire ids. */
export declare const CODECS: readonly ['lz4', 'brotli'];

/** Brotli's quality when none is given. */
export declare const DEFAULT_BROTLI_QUALITY: 1;

/** `input` compressed with `codec` (a Buffer of its own). Throws an Error with `code` ERR_INVALID_ARGUMENT for an unknown codec. */
export declare function compressWith(codec: 'lz4' | 'brotli', input: Uint8Array, brotliQuality?: number): Buffer;

/**
 * `input` decompressed with `codec`: exactly `expectedLength` bytes, never allocating from what
 * the input says (about twice `expectedLength` at most), or an Error whose `code` is
 * 'ERR_BAD_ENCODING'.
 */
export declare function decompressWith(codec: 'lz4' | 'brotli', input: Uint8Array, expectedLength: number): Buffer;
