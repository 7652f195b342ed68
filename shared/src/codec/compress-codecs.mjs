// The page-batch codecs' one definition, in plain JavaScript so that the compress worker thread
// (compress-worker.mjs, no TypeScript loader: it starts in milliseconds) and the synchronous
// functions of compress.ts run exactly this code. Types: compress-codecs.d.mts.
//
//   lz4    lz4-napi (lz4_flex, block format): [uncompressed length, u32 little-endian][block]
//   brotli node:zlib brotli, a raw brotli stream
//
// Decompression trusts nothing in its input: the caller says how many bytes the batch must
// decompress to (from the page count it was announced with), and
//  - lz4: the 4-byte length prefix must equal that length before lz4-napi sees the input (it
//    allocates what the prefix says), and the block must fill it exactly;
//  - brotli: zlib's maxOutputLength stops the decoder as soon as the output passes that length
//    (zlib holds at most one 16 KiB chunk more, plus the final copy), and the stream must fill
//    it exactly and use every input byte (no trailing bytes).
// Any failure throws an Error whose `code` is 'ERR_BAD_ENCODING' (compress.ts turns it into a
// MigrationError with that code; the worker sends the code back).
import { createRequire } from 'node:module';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

const require = createRequire(import.meta.url);
/** lz4-napi, loaded on first use (a native module; every agent imports this file). */
let lz4Module;
const lz4 = () => (lz4Module ??= require('lz4-napi'));

/** The codecs, in the order of their wire ids. */
export const CODECS = ['lz4', 'brotli'];

/** Brotli's quality when none is given: 1 (see compress.ts for the measurements). */
export const DEFAULT_BROTLI_QUALITY = 1;

/** `input` compressed with `codec` (a Buffer of its own). */
export function compressWith(codec, input, brotliQuality = DEFAULT_BROTLI_QUALITY) {
  if (codec === 'lz4') return lz4().compressSync(input);
  if (codec === 'brotli') {
    return brotliCompressSync(input, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: brotliQuality,
        [constants.BROTLI_PARAM_SIZE_HINT]: input.length,
      },
    });
  }
  throw unknownCodec(codec);
}

/** `input` decompressed with `codec`; exactly `expectedLength` bytes or an ERR_BAD_ENCODING Error. */
export function decompressWith(codec, input, expectedLength) {
  let output;
  if (codec === 'lz4') {
    if (input.length < 4) throw badEncoding(`lz4 batch of ${input.length} bytes has no length prefix`);
    const declared = (input[0] | (input[1] << 8) | (input[2] << 16) | (input[3] << 24)) >>> 0;
    if (declared !== expectedLength) {
      throw badEncoding(`lz4 batch declares ${declared} bytes, expected ${expectedLength}`);
    }
    try {
      output = lz4().uncompressSync(input);
    } catch (error) {
      throw badEncoding(`lz4 batch does not decompress: ${error?.message ?? error}`);
    }
  } else if (codec === 'brotli') {
    let result;
    try {
      result = brotliDecompressSync(input, { maxOutputLength: Math.max(1, expectedLength), info: true });
    } catch (error) {
      if (error?.code === 'ERR_BUFFER_TOO_LARGE') {
        throw badEncoding(`brotli batch decompresses to more than ${expectedLength} bytes`);
      }
      throw badEncoding(`brotli batch does not decompress: ${error?.message ?? error}`);
    }
    output = result.buffer;
    if (result.engine.bytesWritten !== input.length) {
      throw badEncoding(`brotli batch has ${input.length - result.engine.bytesWritten} trailing bytes`);
    }
  } else {
    throw unknownCodec(codec);
  }
  if (output.length !== expectedLength) {
    throw badEncoding(`${codec} batch decompresses to ${output.length} bytes, expected ${expectedLength}`);
  }
  return output;
}

function badEncoding(message) {
  return Object.assign(new Error(message), { code: 'ERR_BAD_ENCODING' });
}

function unknownCodec(codec) {
  return Object.assign(new Error(`unknown compression codec ${String(codec)}`), { code: 'ERR_INVALID_ARGUMENT' });
}
