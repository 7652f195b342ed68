/**
 * The disk digest, defined as the memory digest is (digest.ts) with a block for a page:
 * xxhash64(xxhash64(block 0) ‖ xxhash64(block 1) ‖ …) as 16 hex digits, each block hash in
 * xxhash64's canonical 8-byte form. A hole (a block never written: the allocation map says so)
 * counts as a zero block and is never read. It depends only on the bytes a guest would read, not
 * on which blocks are allocated, so an image and a copy that wrote zeros where the other has a
 * hole agree — as a migration that copies only allocated blocks needs. Per-block composition is
 * what will let both sides of a disk migration keep it incrementally (issue 15).
 */
import { createXXHash64 } from 'hash-wasm';
import { BLOCK_SIZE, type DiskImage } from './image.ts';

const HASH_BYTES = 8;
/** Blocks read per positional read (allocated runs are read in chunks of at most this many). */
const CHUNK_BLOCKS = 256;

/** The disk digest (hex) of `image`. Consistent only while nothing writes it (the VM paused, its device drained). */
export async function digestDisk(image: DiskImage): Promise<string> {
  const blockHasher = await createXXHash64();
  const combiner = await createXXHash64();
  blockHasher.init();
  blockHasher.update(new Uint8Array(BLOCK_SIZE));
  const zeroHash = blockHasher.digest('binary');
  const hashes = new Uint8Array(image.blockCount * HASH_BYTES);
  const allocated = image.allocated;
  for (let b = 0; b < image.blockCount;) {
    if (!allocated.has(b)) {
      hashes.set(zeroHash, b * HASH_BYTES);
      b += 1;
      continue;
    }
    let end = b + 1;
    while (end < image.blockCount && end - b < CHUNK_BLOCKS && allocated.has(end)) end += 1;
    const data = await image.readBlocks(b, end - b);
    for (let k = b; k < end; k++) {
      blockHasher.init();
      blockHasher.update(data.subarray((k - b) * BLOCK_SIZE, (k - b + 1) * BLOCK_SIZE));
      hashes.set(blockHasher.digest('binary'), k * HASH_BYTES);
    }
    b = end;
  }
  combiner.init();
  combiner.update(hashes);
  return combiner.digest('hex');
}
