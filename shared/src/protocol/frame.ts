/**
 * The frame layout. Every frame is a fixed 14-byte header, then `metaLen` bytes of msgpack-lite
 * metadata (always one map), then `payloadLen` raw bytes (page contents, register files,
 * bitmaps — never msgpack):
 *
 * ```
 * offset  size  field
 *      0     2  magic       0x4C 0x4D ("LM")
 *      2     1  version     protocol version of the sender (see version.ts)
 *      3     1  type        MsgType (0 is reserved and invalid)
 *      4     2  flags       u16 LE; no bit is defined yet, any set bit is rejected
 *      6     4  metaLen     u32 LE, ≥ 1
 *     10     4  payloadLen  u32 LE
 *     14     …  meta, then payload
 * ```
 *
 * Multi-byte integers are little-endian, like the page-number arrays inside the metadata (which
 * are `Uint32Array` bytes), so neither side swaps bytes on x86/arm64. Both lengths are checked
 * against the configured limits from the header alone, before any byte of the body is buffered.
 *
 * This module is the one place the layout is written down in code: the encoder writes headers
 * with `writeHeader`, the decoder reads them with `readHeader` (through header-parser.ts, which
 * checks them); nothing else uses a header offset.
 */
import { PAGE_SIZE } from '../vm/guest-memory.ts';

/** The two magic bytes, "LM". */
export const MAGIC_0 = 0x4c;
export const MAGIC_1 = 0x4d;
/** The magic as a u16 read little-endian from the first two bytes. */
export const MAGIC = MAGIC_0 | (MAGIC_1 << 8);

/** Byte offsets of the header fields. */
export const HeaderOffset = Object.freeze({
  magic: 0,
  version: 2,
  type: 3,
  flags: 4,
  metaLen: 6,
  payloadLen: 10,
});

/** Size of the fixed header in bytes (14: the last field, payloadLen, is a u32). */
export const HEADER_BYTES = HeaderOffset.payloadLen + 4;

/**
 * Header flag bits. None has a meaning yet (compression will take one, negotiated through a
 * capability first); a frame with any bit outside KNOWN_FLAGS is rejected (`ERR_BAD_METADATA`).
 */
export const KNOWN_FLAGS = 0;

/** Largest frame (header + meta + payload) accepted by default: 16 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Largest metadata accepted by default: 1 MiB (a 256-page batch needs about 1.3 KiB). */
export const DEFAULT_MAX_META_BYTES = 1024 * 1024;
/** Page size assumed until a Setup says otherwise: the toy VM's (one fact, defined there). */
export const DEFAULT_PAGE_SIZE = PAGE_SIZE;
/** Upper bound for any configured frame limit: lengths are u32 on the wire. */
export const MAX_FRAME_LIMIT = 0xffff_ffff;

/** A decoded header. */
export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  metaLen: number;
  payloadLen: number;
}

/** Write a header into `target` at `offset` (no validation: the encoder builds valid ones). */
export function writeHeader(target: Uint8Array, offset: number, header: FrameHeader): void {
  target[offset + HeaderOffset.magic] = MAGIC_0;
  target[offset + HeaderOffset.magic + 1] = MAGIC_1;
  target[offset + HeaderOffset.version] = header.version;
  target[offset + HeaderOffset.type] = header.type;
  target[offset + HeaderOffset.flags] = header.flags & 0xff;
  target[offset + HeaderOffset.flags + 1] = header.flags >>> 8;
  writeU32(target, offset + HeaderOffset.metaLen, header.metaLen);
  writeU32(target, offset + HeaderOffset.payloadLen, header.payloadLen);
}

/** True when the two bytes at `offset` are the magic "LM". */
export function hasMagic(source: Uint8Array, offset: number): boolean {
  return source[offset + HeaderOffset.magic] === MAGIC_0 && source[offset + HeaderOffset.magic + 1] === MAGIC_1;
}

/**
 * Read the header fields at `offset` — the inverse of writeHeader, layout only: nothing is
 * checked (header-parser.ts does that). `source` must hold HEADER_BYTES bytes from `offset`.
 */
export function readHeader(source: Uint8Array, offset: number): FrameHeader {
  return {
    version: source[offset + HeaderOffset.version]!,
    type: source[offset + HeaderOffset.type]!,
    flags: source[offset + HeaderOffset.flags]! | (source[offset + HeaderOffset.flags + 1]! << 8),
    metaLen: readU32(source, offset + HeaderOffset.metaLen),
    payloadLen: readU32(source, offset + HeaderOffset.payloadLen),
  };
}

/** Read a u32 little-endian. */
export function readU32(source: Uint8Array, offset: number): number {
  return (source[offset]! | (source[offset + 1]! << 8) | (source[offset + 2]! << 16)) + source[offset + 3]! * 0x1000000;
}

function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value & 0xff;
  target[offset + 1] = (value >>> 8) & 0xff;
  target[offset + 2] = (value >>> 16) & 0xff;
  target[offset + 3] = (value >>> 24) & 0xff;
}
