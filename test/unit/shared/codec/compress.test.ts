/**
 * The batch codecs on the calling thread: lz4 and brotli round-trip any batch; decompression of
 * garbage, of a corrupted or truncated batch, of a batch with the wrong length and of a bomb
 * throws ERR_BAD_ENCODING without allocating from what the input says; and the per-page
 * "looks compressible" guess tells random pages from text, code and zero pages.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMigrationError } from '../../../../shared/src/errors.ts';
import {
  COMPRESSION_CODECS,
  DEFAULT_MAX_BATCH_BYTES,
  compressSync,
  decompressSync,
  isCompressionCodec,
  looksCompressible,
  type CompressionCodec,
} from '../../../../shared/src/codec/compress.ts';
import { PAGE, anyPage, codeOf, makePage, sameBytes } from './arbitraries.ts';

const codecs = COMPRESSION_CODECS;
const batch = fc.array(anyPage, { minLength: 0, maxLength: 8 }).map((pages) => Uint8Array.from(Buffer.concat(pages)));

describe.each(codecs)('%s', (codec: CompressionCodec) => {
  it('round-trips any batch of pages (random, text, zero, patterned; empty too)', () => {
    fc.assert(
      fc.property(batch, (input) => {
        const packed = compressSync(input, codec);
        expect(sameBytes(decompressSync(packed, input.length, codec), input)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('shrinks text-like pages and does not shrink random ones much', () => {
    const text = Uint8Array.from(Buffer.concat(Array.from({ length: 16 }, (_, i) => makePage('text', i))));
    expect(compressSync(text, codec).length).toBeLessThan(text.length / 2);
    const random = makePage('random', 1);
    expect(compressSync(random, codec).length).toBeGreaterThan(random.length * 0.95);
  });

  it('rejects garbage with ERR_BAD_ENCODING', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: 0, max: 8 * PAGE }),
        (garbage, expectedLength) => {
          let code: string | undefined;
          let output: Uint8Array | undefined;
          try {
            output = decompressSync(garbage, expectedLength, codec);
          } catch (error) {
            code = isMigrationError(error) ? error.code : String(error);
          }
          // Garbage may happen to be a valid batch of exactly that length (e.g. lz4's "0 bytes"):
          // then it is one. Anything else is the coded error.
          if (code === undefined) expect(output!.length).toBe(expectedLength);
          else expect(code).toBe('ERR_BAD_ENCODING');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a corrupted or truncated batch throws ERR_BAD_ENCODING or gives exactly the announced length', () => {
    fc.assert(
      fc.property(batch, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (input, at, x, truncate) => {
        const packed = Uint8Array.from(compressSync(input, codec));
        const bad = truncate ? packed.subarray(0, at % packed.length) : packed;
        if (!truncate) bad[at % bad.length] = bad[at % bad.length]! ^ x;
        let output: Uint8Array | undefined;
        const code = codeOf(() => (output = decompressSync(bad, input.length, codec)));
        if (code === undefined)
          expect(output!.length).toBe(input.length); // a flipped literal: the digest's job
        else expect(code).toBe('ERR_BAD_ENCODING');
      }),
      { numRuns: 200 },
    );
  });

  it('a batch that decompresses to another length than announced is rejected', () => {
    const input = Uint8Array.from(Buffer.concat([makePage('text', 1), makePage('text', 2)]));
    const packed = compressSync(input, codec);
    expect(codeOf(() => decompressSync(packed, input.length - 1, codec))).toBe('ERR_BAD_ENCODING');
    expect(codeOf(() => decompressSync(packed, input.length + 1, codec))).toBe('ERR_BAD_ENCODING');
    expect(codeOf(() => decompressSync(packed, input.length - PAGE, codec))).toBe('ERR_BAD_ENCODING');
  });

  it('a bomb (64 MiB of zeros announced as 2 pages) is rejected without allocating its size', () => {
    const bomb = compressSync(new Uint8Array(DEFAULT_MAX_BATCH_BYTES), codec);
    const before = process.memoryUsage().arrayBuffers;
    expect(codeOf(() => decompressSync(bomb, 2 * PAGE, codec))).toBe('ERR_BAD_ENCODING');
    // A lower bound (a collection may run meanwhile), but an unbounded decoder shows ~64 MiB here.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024);
  });

  it('refuses an announced length that is not an integer in 0–64 MiB', () => {
    const packed = compressSync(new Uint8Array(PAGE), codec);
    for (const length of [-1, 1.5, NaN, DEFAULT_MAX_BATCH_BYTES + 1]) {
      expect(codeOf(() => decompressSync(packed, length, codec))).toBe('ERR_BAD_ENCODING');
    }
  });
});

describe('codec specifics', () => {
  it('lz4: a length prefix other than the announced length is refused before lz4 allocates it', () => {
    const packed = Uint8Array.from(compressSync(new Uint8Array(PAGE), 'lz4'));
    new DataView(packed.buffer).setUint32(0, 0xffffffff, true); // "4 GiB"
    expect(codeOf(() => decompressSync(packed, PAGE, 'lz4'))).toBe('ERR_BAD_ENCODING');
    expect(codeOf(() => decompressSync(new Uint8Array(3), 0, 'lz4'))).toBe('ERR_BAD_ENCODING');
  });

  it('brotli: trailing bytes after the stream are refused', () => {
    const packed = compressSync(makePage('text', 1), 'brotli');
    expect(codeOf(() => decompressSync(Uint8Array.from([...packed, 0]), PAGE, 'brotli'))).toBe('ERR_BAD_ENCODING');
  });

  it('brotli quality is settable (0–11) and checked', () => {
    const text = Uint8Array.from(Buffer.concat(Array.from({ length: 8 }, (_, i) => makePage('text', i))));
    const q0 = compressSync(text, 'brotli', { brotliQuality: 0 });
    const q9 = compressSync(text, 'brotli', { brotliQuality: 9 });
    expect(q9.length).toBeLessThanOrEqual(q0.length);
    expect(sameBytes(decompressSync(q9, text.length, 'brotli'), text)).toBe(true);
    expect(codeOf(() => compressSync(text, 'brotli', { brotliQuality: 12 }))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('unknown codecs and oversized inputs are caller errors', () => {
    expect(isCompressionCodec('lz4')).toBe(true);
    expect(isCompressionCodec('zstd')).toBe(false);
    expect(codeOf(() => compressSync(new Uint8Array(1), 'zstd' as CompressionCodec))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => decompressSync(new Uint8Array(1), 1, 'zstd' as CompressionCodec))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => compressSync(new Uint8Array(DEFAULT_MAX_BATCH_BYTES + 1)))).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('looksCompressible', () => {
  it('says no to random pages and yes to text, patterned and zero pages', () => {
    for (let seed = 1; seed <= 50; seed++) {
      expect(looksCompressible(makePage('random', seed))).toBe(false);
      expect(looksCompressible(makePage('text', seed))).toBe(true);
      expect(looksCompressible(makePage('pattern', seed))).toBe(true);
    }
    expect(looksCompressible(new Uint8Array(PAGE))).toBe(true);
  });

  it('works on pages of other sizes', () => {
    expect(looksCompressible(makePage('random', 1, 512))).toBe(false);
    expect(looksCompressible(makePage('text', 1, 512))).toBe(true);
    expect(looksCompressible(makePage('random', 1, 16384))).toBe(false);
    expect(looksCompressible(makePage('text', 1, 16384))).toBe(true);
  });
});
