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
import { readBlockList, SpanScratch, type BlockSource } from './read-blocks.ts';
import type { ReadonlyBitmap } from '../bitmap.ts';
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
  await hashBlocksInto(ledger, image, image.allocated);
  return ledger;
}

/**
 * Reads the blocks set in `blocks` from `source` and records them in `ledger` (BATCH_BLOCKS at a
 * time, by readBlockList). What ledgerOf does for an open image; a shared-storage destination
 * does it for the image file the source still runs on (file-reader.ts) and, at the stop point,
 * for the blocks written since.
 */
export async function hashBlocksInto(
  ledger: BlockDigestLedger,
  source: BlockSource,
  blocks: ReadonlyBitmap,
  signal?: AbortSignal,
): Promise<void> {
  const batch = new Uint32Array(BATCH_BLOCKS);
  const scratch = new SpanScratch();
  const end = Math.min(blocks.size, ledger.blockCount);
  for (let b = end > 0 ? blocks.nextSet(0) : -1; b >= 0 && b < end;) {
    if (signal?.aborted) throw signal.reason as Error;
    let count = 0;
    while (b >= 0 && b < end && count < BATCH_BLOCKS) {
      batch[count++] = b;
      b = b + 1 < end ? blocks.nextSet(b + 1) : -1;
    }
    const list = batch.subarray(0, count);
    const data = await readBlockList(source, list, { scratch });
    for (let i = 0; i < count; i++) ledger.update(list[i]!, data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
  }
}
