/**
 * What a disk migration needs of the device: hooks around reads and writes, an image that can be
 * detached (shared storage between the source's stop point and the destination's open) and
 * attached again, and write latencies with a sequence number.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirtyLog } from '../../../../../shared/src/vm/dirty-log.ts';
import { BlkDevice } from '../../../../../shared/src/vm/disk/blk-device.ts';
import { GuestBlkRing } from '../../../../../shared/src/vm/disk/guest-ring.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import { OP_READ, OP_WRITE, S_OK } from '../../../../../shared/src/vm/disk/layout.ts';
import { GuestMemory } from '../../../../../shared/src/vm/guest-memory.ts';

const RING = 4;
let dir: string;
let memory: GuestMemory;
let image: DiskImage;
let device: BlkDevice;
let guest: GuestBlkRing;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-blk-hooks-'));
  memory = GuestMemory.allocate(1024 * 1024);
  image = await DiskImage.create(join(dir, 'disk.img'), 4 * 1024 * 1024);
  device = new BlkDevice({ memory, dmaLog: new DirtyLog(memory.pageCount), image, ringPage: RING, kick: () => {} });
  guest = new GuestBlkRing(memory, RING);
});
afterEach(async () => {
  device.close();
  await image.close();
  rmSync(dir, { recursive: true, force: true });
});

function submit(op: number, block: number, page: number): number {
  const index = guest.submit({ tag: 0, op, block, count: 1, pages: [page] });
  if (index === undefined) throw new Error('ring full');
  return index;
}

describe('BlkDevice for a migration', () => {
  it('holds a write until afterWrite resolves — the write is in the image by then — and times it', async () => {
    memory.page(20).fill(7);
    let release!: () => void;
    let called!: () => void;
    const hookCalled = new Promise<void>((resolve) => (called = resolve));
    const seen: number[] = [];
    device.setHooks({
      afterWrite: (first, data) => {
        seen.push(first, data[0]!);
        called();
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const seq = device.writeSeq;
    const w = submit(OP_WRITE, 9, 20);
    const serving = device.serve();
    await hookCalled;
    expect(seen).toEqual([9, 7]);
    expect(guest.completed(w)).toBe(false); // the guest waits for the mirror's acknowledgement
    expect((await image.readBlocks(9, 1))[0]).toBe(7); // …but the local write is done
    // The mirror holds the write 20 ms more: its latency, as the guest sees it, includes that.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(guest.completed(w)).toBe(false);
    release();
    await serving;
    expect(guest.status(w)).toBe(S_OK);
    expect(device.writeLatenciesSince(seq)).toHaveLength(1);
    expect(device.writeLatenciesSince(seq)[0]).toBeGreaterThanOrEqual(15);
  });

  it('runs the afterWrite hook set while a write was already in flight (a mirror starting mid-write sees it)', async () => {
    memory.page(21).fill(3);
    const w = submit(OP_WRITE, 11, 21);
    const mirrored: number[] = [];
    // The mirror starts after the device took the write and before the write is in the image.
    device.setHooks({
      beforeWrite: () => device.setHooks({ afterWrite: (first) => Promise.resolve(void mirrored.push(first)) }),
    });
    await device.serve();
    expect(guest.status(w)).toBe(S_OK);
    expect(mirrored).toEqual([11]);
  });

  it('asks beforeRead before reading, and beforeWrite before writing', async () => {
    const calls: string[] = [];
    device.setHooks({
      beforeRead: (first, count) => Promise.resolve(void calls.push(`read ${first}+${count}`)),
      beforeWrite: (first, count) => void calls.push(`write ${first}+${count}`),
    });
    submit(OP_WRITE, 5, 22);
    submit(OP_READ, 6, 23);
    await device.serve();
    expect(calls).toEqual(['write 5+1', 'read 6+1']);
  });

  it('serves nothing while its image is detached, and the waiting requests once one is attached', async () => {
    memory.page(24).fill(9);
    device.attachImage(null);
    const w = submit(OP_WRITE, 3, 24);
    expect(await device.serve()).toBe(0);
    let woke = false;
    const waiting = device.waitForRequests().then(() => (woke = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(woke).toBe(false); // requests are pending, but there is no image to serve them
    device.attachImage(image);
    await waiting;
    expect(await device.serve()).toBe(1);
    expect(guest.status(w)).toBe(S_OK);
    expect((await image.readBlocks(3, 1))[BLOCK_SIZE - 1]).toBe(9);
  });
});
