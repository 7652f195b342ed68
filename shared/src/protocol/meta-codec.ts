/**
 * msgpack-lite for frame metadata only (page bytes never go through it). Decoding uses a codec
 * without msgpack-lite's preset extension types, so a hostile peer cannot make us construct
 * Errors, RegExps or typed arrays: an ext value decodes to an opaque ExtBuffer that no schema
 * accepts. The whole metadata must be exactly one msgpack value (no trailing bytes).
 */
import msgpack from 'msgpack-lite';
import { MigrationError } from '../errors.ts';

const DECODE_CODEC = msgpack.createCodec({});

interface RawDecoder {
  offset: number;
  buffer: Uint8Array;
  write(chunk: Uint8Array): void;
  fetch(): unknown;
}

/** Encode a metadata map (Buffers become msgpack `bin`). */
export function encodeMeta(value: Record<string, unknown>): Buffer {
  return msgpack.encode(value);
}

/**
 * Decode one msgpack value filling `bytes` exactly. Throws `ERR_BAD_METADATA` for anything that
 * is not (including a stack overflow on absurd nesting, which msgpack-lite recurses into).
 */
export function decodeMeta(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new MigrationError('ERR_BAD_METADATA', 'metadata is empty');
  let value: unknown;
  let consumed: number;
  try {
    const decoder = msgpack.Decoder({ codec: DECODE_CODEC }) as unknown as RawDecoder;
    decoder.write(bytes);
    value = decoder.fetch();
    consumed = decoder.offset;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new MigrationError('ERR_BAD_METADATA', `metadata is not valid msgpack (${reason})`, { cause: err });
  }
  if (consumed !== bytes.length) {
    throw new MigrationError(
      'ERR_BAD_METADATA',
      `metadata has ${bytes.length - consumed} trailing bytes after its msgpack value`,
    );
  }
  return value;
}
