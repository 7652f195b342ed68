/**
 * The disk digest of an image: every allocated block read and fed to a BlockDigestLedger
 * (ledger.ts holds the definition: xxhash64 per block, per 256 MiB chunk, then over the chunks).
 * A hole (a block never written: the allocation map says so) counts as a zero block and is
 * never read. It depends only on the bytes a guest would read, not on which blocks are
 * allocated, so an image and a copy that wrote zeros where the other has a hole agree — as a
 * migration that copies only allocated blocks needs — and a ledger kept block by block during a
 * migration gives the same value without reading the disk.
 */
import type { DiskImage } from './image.ts';
import { BlockDigestLedger } from './ledger.ts';

/** Blocks read per positional read (allocated runs are read in chunks of at most this many). */
const CHUNK_BLOCKS = 256;

/** The disk digest (hex) of `image`. Consistent only while nothing writes it (the VM paused, its device drained). */
export async function digestDisk(image: DiskImage): Promise<string> {
  return (await ledgerOf(image)).digest();
}

/** A ledger holding every block of `image` (allocated blocks read; holes stay zero). Same consistency rule as digestDisk. */
export async function ledgerOf(image: DiskImage): Promise<BlockDigestLedger> {
  const ledger = new BlockDigestLedger(image.blockCount);
  const allocated = image.allocated;
  for (let b = allocated.nextSet(0); b >= 0 && b < image.blockCount; b = allocated.nextSet(b)) {
    let end = b + 1;
    while (end < image.blockCount && end - b < CHUNK_BLOCKS && allocated.has(end)) end += 1;
    const data = await image.readBlocks(b, end - b);
    ledger.updateRun(b, data);
    b = end;
  }
  return ledger;
}
