/**
 * The disk digest of an image: every allocated block read and fed to a BlockDigestLedger
 * (ledger.ts holds the definition: xxhash64 per block, per 256 MiB chunk, then over the chunks).
 * A hole (a block never written: the allocation map says so) counts as a zero block and is
 * never read. It depends only on the bytes a guest would read, not on which blocks are
 * allocated, so an image and a copy that wrote zeros where the other has a hole agree — as a
 * migration that copies only allocated blocks needs — and a ledger kept block by block during a
 * migration gives the same value without reading the disk.
 */
import { BLOCK_SIZE, type DiskImage } from './image.ts';
import { readBlockList } from './read-blocks.ts';
import { BlockDigestLedger } from './ledger.ts';

/** Allocated blocks read and hashed at a time (1 MiB). */
const BATCH_BLOCKS = 256;

/** The disk digest (hex) of `image`. Consistent only while nothing writes it (the VM paused, its device drained). */
export async function digestDisk(image: DiskImage): Promise<string> {
  return (await ledgerOf(image)).digest();
}

/**
 * A ledger holding every block of `image` (allocated blocks read and hashed, BATCH_BLOCKS at a
 * time, by readBlockList; holes stay zero). Same consistency rule as digestDisk. A
 * shared-storage switchover hashes the image inside the downtime: reading it run by run cost
 * seconds for a disk a guest wrote at random.
 */
export async function ledgerOf(image: DiskImage): Promise<BlockDigestLedger> {
  const ledger = new BlockDigestLedger(image.blockCount);
  const allocated = image.allocated;
  const batch = new Uint32Array(BATCH_BLOCKS);
  for (let b = allocated.nextSet(0); b >= 0;) {
    let count = 0;
    while (b >= 0 && count < BATCH_BLOCKS) {
      batch[count++] = b;
      b = b + 1 < image.blockCount ? allocated.nextSet(b + 1) : -1;
    }
    const blocks = batch.subarray(0, count);
    const data = await readBlockList(image, blocks);
    for (let i = 0; i < count; i++) ledger.update(blocks[i]!, data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
  }
  return ledger;
}
