/**
 * Reading a list of scattered blocks fast. A guest writing at random leaves allocated runs of a
 * block or two, and each positional read through the promise API costs tens of microseconds of
 * the event loop, so reading run by run makes the number of runs the cost (profiles of a disk
 * migration: the reads and writes were the agents' busiest frames). A list whose span is at most
 * SPAN_READ_FACTOR times its length is read in ONE positional read of the span, holes included
 * (a sparse file's hole reads as zeros without touching the disk); a sparser list reads its runs,
 * all at once. Which blocks are read is the caller's (the allocation map): nothing is scanned.
 */
import { BLOCK_SIZE, type DiskImage } from './image.ts';

/** A list spanning at most this many times its length is read in one positional read. */
export const SPAN_READ_FACTOR = 4;

/** Read `blocks` (ascending, distinct) into one buffer, block i's bytes at i × BLOCK_SIZE. */
export async function readBlockList(image: DiskImage, blocks: ArrayLike<number>): Promise<Uint8Array> {
  const data = new Uint8Array(blocks.length * BLOCK_SIZE);
  if (blocks.length === 0) return data;
  const first = blocks[0]!;
  const span = blocks[blocks.length - 1]! - first + 1;
  if (span <= SPAN_READ_FACTOR * blocks.length) {
    const all = await image.readSpan(first, span, new Uint8Array(span * BLOCK_SIZE));
    for (let i = 0; i < blocks.length; i++) {
      const at = (blocks[i]! - first) * BLOCK_SIZE;
      data.set(all.subarray(at, at + BLOCK_SIZE), i * BLOCK_SIZE);
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
