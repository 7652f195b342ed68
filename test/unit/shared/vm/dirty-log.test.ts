import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Bitmap } from '../../../../shared/src/vm/bitmap.ts';
import { DirtyLog, markDirty } from '../../../../shared/src/vm/dirty-log.ts';

describe('DirtyLog.harvest', () => {
  it('returns the marked pages ascending, once, and clears them', () => {
    const log = new DirtyLog(1000);
    for (const p of [999, 0, 31, 32, 33, 500, 31]) markDirty(log.words, p);
    expect(log.pendingCount).toBe(6);
    expect([...log.harvest()]).toEqual([0, 31, 32, 33, 500, 999]);
    expect(log.harvest().length).toBe(0);
    expect(log.pendingCount).toBe(0);
  });

  it('ORs what it harvests into the ever-dirty map', () => {
    const log = new DirtyLog(100);
    const ever = new Bitmap(100);
    markDirty(log.words, 5);
    log.harvest(ever);
    markDirty(log.words, 70);
    log.harvest(ever);
    expect([...ever.toPageList()]).toEqual([5, 70]);
  });

  it('peekInto reports dirty pages without clearing them', () => {
    const log = new DirtyLog(64);
    const map = new Bitmap(64);
    markDirty(log.words, 63);
    log.peekInto(map);
    expect(map.has(63)).toBe(true);
    expect([...log.harvest()]).toEqual([63]);
  });

  it('loses no store racing harvests: every page is reported after its last store (10^6+ stores)', async () => {
    // About two stores per page, so most pages' last store lands mid-run, racing some harvest: a
    // lost mark then shows as a page never reported, or reported before its last store. A page's
    // contents are one data word here (the log does not care where the data lives).
    const pageCount = 1 << 20;
    const minStores = 2_000_000;
    const memory = new SharedArrayBuffer(pageCount * 4);
    const log = new DirtyLog(pageCount);
    const journal = new SharedArrayBuffer(pageCount * 4);
    const flags = new Int32Array(new SharedArrayBuffer(12));
    const worker = new Worker(new URL('../../../../shared/src/worker-boot.mjs', import.meta.url), {
      workerData: {
        entry: new URL('./dirty-writer.worker.ts', import.meta.url).href,
        memory,
        dirty: log.buffer,
        journal,
        flags: flags.buffer,
        pageCount,
        minStores,
      },
    });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    while (Atomics.load(flags, 0) === 0) await new Promise((resolve) => setImmediate(resolve)); // until it writes

    // Harvest concurrently, like pre-copy rounds: after each harvest, "send" (copy) the pages' data.
    const mem = new Int32Array(memory);
    const received = new Int32Array(pageCount);
    const reported = new Bitmap(pageCount);
    let racingHarvests = 0;
    const round = (): void => {
      for (const p of log.harvest(reported)) received[p] = mem[p]!;
    };
    while (Atomics.load(flags, 0) !== 2) {
      round();
      racingHarvests += 1;
      if (racingHarvests >= 20 && Atomics.load(flags, 2) >= minStores) Atomics.store(flags, 1, 1);
    }
    round(); // the final harvest after the writer stopped (stop-and-copy)
    await exited;

    const written = new Int32Array(journal);
    let pagesWritten = 0;
    let stores = 0;
    const missing: number[] = [];
    const stale: number[] = [];
    for (let p = 0; p < pageCount; p++) {
      if (written[p] === 0) continue;
      pagesWritten += 1;
      stores = Math.max(stores, written[p]!);
      if (!reported.has(p)) missing.push(p);
      else if (received[p] !== written[p]) stale.push(p);
    }
    expect(stores).toBeGreaterThanOrEqual(minStores);
    expect(racingHarvests).toBeGreaterThanOrEqual(20);
    expect(pagesWritten).toBeGreaterThan(pageCount / 2);
    expect(missing).toEqual([]);
    expect(stale).toEqual([]); // the copy made after the page's last harvest holds its last store
  });
});
