/**
 * Reading a list of scattered blocks fast. A guest writing at random leaves allocated runs of a
 * block or two, and each positional read through the promise API costs tens of microseconds of
 * the event loop, so reading run by run makes the number of runs the cost (profiles of a disk
 * migration: the reads and writes were the agents' busiest frames). A list whose span is at most
 * SPAN_READ_FACTOR times its length is read in ONE positional read of the span, holes included
 * (a sparse file's hole reads as zeros without touching the disk); a sparser list reads its runs,
 * all at once. Which blocks are read is the caller's (the allocation map): nothing is scanned.
 */
import { MigrationError } from '../../errors.ts';
import { BLOCK_SIZE } from './image.ts';

/** What readBlockList reads from: a DiskImage, or a read-only view of an image file (file-reader.ts). */
export interface BlockSource {
  /** Blocks [first, first + count) into `into` (count × BLOCK_SIZE bytes), holes as zeros. */
  readSpan(first: number, count: number, into: Uint8Array): Promise<Uint8Array>;
  /** Blocks [first, first + count) into `into`; a source that knows its holes need not read them. */
  readBlocks(first: number, count: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** A list spanning at most this many times its length is read in one positional read. */
export const SPAN_READ_FACTOR = 4;

/**
 * A span buffer kept between reads by a caller that reads one list at a time (a sender's loop):
 * the span, up to SPAN_READ_FACTOR times the list, is read into it instead of a new buffer each
 * time — a migration reads its whole disk through it, and allocating the span per batch made
 * the source's garbage collector one of its busiest threads (profiles of the storage benchmark).
 */
export class SpanScratch {
  #buffer = new Uint8Array(0);

  /** `bytes` of scratch; valid until the next call. */
  take(bytes: number): Uint8Array {
    if (this.#buffer.length < bytes) this.#buffer = new Uint8Array(bytes);
    return this.#buffer.subarray(0, bytes);
  }
}

/** Where readBlockList may put what it reads. */
export interface ReadBlockListOptions {
  /** Holds the span of a sparse list between reads (one read at a time per scratch). */
  scratch?: SpanScratch;
  /** The result goes into the start of this buffer (at least blocks × BLOCK_SIZE) instead of a new one. */
  into?: Uint8Array;
}

/**
 * Read `blocks` (ascending, distinct) into one buffer, block i's bytes at i × BLOCK_SIZE: a new
 * one, or the start of `options.into`. A dense list is read straight into it; a sparse one's
 * span goes through `options.scratch` when given.
 */
export async function readBlockList(
  image: BlockSource,
  blocks: ArrayLike<number>,
  options: ReadBlockListOptions = {},
): Promise<Uint8Array> {
  const bytes = blocks.length * BLOCK_SIZE;
  const { scratch, into } = options;
  if (into && into.length < bytes) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `${blocks.length} blocks need ${bytes} bytes, got ${into.length}`);
  }
  const data = into ? into.subarray(0, bytes) : new Uint8Array(bytes);
  if (blocks.length === 0) return data;
  const first = blocks[0]!;
  const span = blocks[blocks.length - 1]! - first + 1;
  if (span === blocks.length) return image.readSpan(first, span, data);
  if (span <= SPAN_READ_FACTOR * blocks.length) {
    const spanBytes = span * BLOCK_SIZE;
    const all = await image.readSpan(first, span, scratch ? scratch.take(spanBytes) : new Uint8Array(spanBytes));
    for (let i = 0; i < blocks.length;) {
      let j = i + 1; // a run of consecutive blocks is one copy
      while (j < blocks.length && blocks[j] === blocks[j - 1]! + 1) j += 1;
      const at = (blocks[i]! - first) * BLOCK_SIZE;
      data.set(all.subarray(at, at + (j - i) * BLOCK_SIZE), i * BLOCK_SIZE);
      i = j;
    }
    return data;
  }
  const reads: Promise<Uint8Array>[] = [];
  for (let i = 0; i < blocks.length;) {
    let j = i + 1;
    while (j < blocks.length && blocks[j] === blocks[j - 1]! + 1) j += 1;
    reads.push(image.readBlocks(blocks[i]!, j - i, data.subarray(i * BLOCK_SIZE, j * BLOCK_SIZE)));
    i = j;
  }
  await Promise.all(reads);
  return data;
}
