import { promises as fs, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Bitmap } from '../../../../../shared/src/vm/bitmap.ts';
import { DirtyLog } from '../../../../../shared/src/vm/dirty-log.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the block dirty log (DiskImage.dirtyLog)', () => {
  it('loses no write racing harvests from another thread: every block is reported after its last write', async () => {
    // About two writes per block, so most blocks' last write lands mid-run, racing some harvest:
    // a lost mark shows as a block never reported, or reported before its last write.
    dir = mkdtempSync(join(tmpdir(), 'livemig-disk-'));
    const path = join(dir, 'disk.img');
    const blockCount = 8192;
    const minWrites = 16_384;
    await (await DiskImage.create(path, blockCount * BLOCK_SIZE)).close();
    const log = new DirtyLog(blockCount);
    const journal = new SharedArrayBuffer(blockCount * 4);
    const flags = new Int32Array(new SharedArrayBuffer(12));
    const worker = new Worker(new URL('../../../../../shared/src/worker-boot.mjs', import.meta.url), {
      workerData: {
        entry: new URL('./block-writer.worker.ts', import.meta.url).href,
        path,
        dirty: log.buffer,
        journal,
        flags: flags.buffer,
        minWrites,
      },
    });
    const exited = new Promise((resolve, reject) => {
      worker.once('exit', resolve);
      worker.once('error', reject);
    });
    while (Atomics.load(flags, 0) === 0) await new Promise((resolve) => setTimeout(resolve, 1));

    // Harvest concurrently, like pre-copy rounds of the disk: after each harvest, read ("send")
    // the harvested blocks' first word from the file.
    const file = await fs.open(path, 'r');
    const word = new Int32Array(1);
    const received = new Int32Array(blockCount);
    const reported = new Bitmap(blockCount);
    const round = async (): Promise<void> => {
      for (const b of log.harvest(reported)) {
        await file.read(new Uint8Array(word.buffer), 0, 4, b * BLOCK_SIZE);
        received[b] = word[0]!;
      }
    };
    let racingHarvests = 0;
    while (Atomics.load(flags, 0) !== 2) {
      await round();
      racingHarvests += 1;
      if (racingHarvests >= 20 && Atomics.load(flags, 2) >= minWrites) Atomics.store(flags, 1, 1);
    }
    await round(); // the final harvest after the writer stopped (stop-and-copy)
    await exited;
    await file.close();

    const written = new Int32Array(journal);
    let blocksWritten = 0;
    const missing: number[] = [];
    const stale: number[] = [];
    for (let b = 0; b < blockCount; b++) {
      if (written[b] === 0) continue;
      blocksWritten += 1;
      if (!reported.has(b)) missing.push(b);
      else if (received[b] !== written[b]) stale.push(b);
    }
    expect(Atomics.load(flags, 2)).toBeGreaterThanOrEqual(minWrites);
    expect(racingHarvests).toBeGreaterThanOrEqual(20);
    expect(blocksWritten).toBeGreaterThan(blockCount / 2);
    expect(missing).toEqual([]);
    expect(stale).toEqual([]); // the read made after the block's last harvest holds its last write
  });
});
