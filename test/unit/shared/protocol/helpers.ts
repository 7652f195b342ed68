/** Hand-built frames for negative tests: every header field settable, metadata as bytes or a value. */
import msgpack from 'msgpack-lite';
import { HEADER_BYTES, MAGIC_0, MAGIC_1, PROTOCOL_VERSION } from '../../../../shared/src/protocol/index.ts';
import { MigrationError, type ErrorCode } from '../../../../shared/src/errors.ts';

export interface RawFrame {
  magic?: [number, number];
  version?: number;
  type: number;
  flags?: number;
  /** Bytes, or a value to msgpack-encode. */
  meta?: Uint8Array | unknown;
  payload?: Uint8Array;
  /** Override the lengths written in the header. */
  metaLen?: number;
  payloadLen?: number;
}

export function rawFrame(f: RawFrame): Buffer {
  const meta = f.meta instanceof Uint8Array ? Buffer.from(f.meta) : msgpack.encode(f.meta ?? {});
  const payload = Buffer.from(f.payload ?? new Uint8Array(0));
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = f.magic?.[0] ?? MAGIC_0;
  head[1] = f.magic?.[1] ?? MAGIC_1;
  head[2] = f.version ?? PROTOCOL_VERSION;
  head[3] = f.type;
  head.writeUInt16LE(f.flags ?? 0, 4);
  head.writeUInt32LE(f.metaLen ?? meta.length, 6);
  head.writeUInt32LE(f.payloadLen ?? payload.length, 10);
  return Buffer.concat([head, meta, payload]);
}

/** The MigrationError code `fn` throws; fails the test if it throws anything else or nothing. */
export function codeOf(fn: () => unknown): ErrorCode {
  try {
    fn();
  } catch (err) {
    if (err instanceof MigrationError) return err.code;
    throw new Error(`threw a non-MigrationError: ${String(err)}`, { cause: err });
  }
  throw new Error('did not throw');
}
