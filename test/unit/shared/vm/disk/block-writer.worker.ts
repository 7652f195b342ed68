/**
 * Test worker for block-dirty-log.test.ts: a guest's disk writes from another thread. It opens
 * the image with the host's shared block dirty log and writes random blocks as fast as it can —
 * each block's first word is the write's sequence number — keeping a journal of the last number
 * written to every block (after the write resolved, i.e. after the image marked it). It publishes
 * its write count and stops once it has made at least `minWrites` and the host raised the stop
 * flag, so writes and harvests really overlap however the machine schedules them.
 */
import { workerData } from 'node:worker_threads';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import { hash32 } from '../../../../../shared/src/vm/prng.ts';

interface WriterData {
  path: string;
  dirty: SharedArrayBuffer;
  journal: SharedArrayBuffer;
  /** [state: 0 booting, 1 writing, 2 done; stop request; writes so far] */
  flags: SharedArrayBuffer;
  minWrites: number;
}

const data = workerData as WriterData;
const journal = new Int32Array(data.journal);
const flags = new Int32Array(data.flags);
const image = await DiskImage.open(data.path, { dirtyLog: data.dirty });
const block = new Uint8Array(BLOCK_SIZE);
const first = new Int32Array(block.buffer, 0, 1);

Atomics.store(flags, 0, 1);
for (let i = 1; ; i++) {
  const b = hash32(i) % image.blockCount;
  first[0] = i;
  await image.writeBlocks(b, block); // the data, then (inside) the mark
  journal[b] = i;
  Atomics.store(flags, 2, i);
  if (i >= data.minWrites && Atomics.load(flags, 1) === 1) break;
}
await image.close();
Atomics.store(flags, 0, 2);
