/**
 * Test worker for dirty-log.test.ts: a vCPU stand-in that stores to random pages as fast as it
 * can — data first (the store's sequence number into the page's data word), then the mark —
 * keeping a journal of the last value it stored to every page. It publishes its store count
 * every 4096 stores and stops once it has made at least `minStores` and the host raised the
 * stop flag (so the two really overlap however the machine schedules them).
 */
import { workerData } from 'node:worker_threads';
import { markDirty } from '../../../../shared/src/vm/dirty-log.ts';
import { hash32 } from '../../../../shared/src/vm/prng.ts';

interface WriterData {
  /** One data word per page (the page's contents, as far as this test cares). */
  memory: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  journal: SharedArrayBuffer;
  /** [state: 0 booting, 1 writing, 2 done; stop request; stores so far] */
  flags: SharedArrayBuffer;
  pageCount: number;
  minStores: number;
}

const data = workerData as WriterData;
const mem = new Int32Array(data.memory);
const dirty = new Int32Array(data.dirty);
const journal = new Int32Array(data.journal);
const flags = new Int32Array(data.flags);

Atomics.store(flags, 0, 1);
for (let i = 1; ; i++) {
  const p = hash32(i) % data.pageCount;
  mem[p] = i; // the data…
  markDirty(dirty, p); // …then the mark
  journal[p] = i;
  if ((i & 4095) === 0) {
    Atomics.store(flags, 2, i);
    if (i >= data.minStores && Atomics.load(flags, 1) === 1) break;
  }
}
Atomics.store(flags, 0, 2);
