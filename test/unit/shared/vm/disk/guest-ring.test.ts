import { describe, expect, it } from 'vitest';
import { DirtyLog } from '../../../../../shared/src/vm/dirty-log.ts';
import { GuestBlkRing } from '../../../../../shared/src/vm/disk/guest-ring.ts';
import {
  BLK_RING_SLOTS,
  OP_WRITE,
  W_AVAIL,
  W_USED,
  blkSlotOffset,
  decodeRequest,
} from '../../../../../shared/src/vm/disk/layout.ts';
import { GuestMemory } from '../../../../../shared/src/vm/guest-memory.ts';

const RING = 10;

describe('GuestBlkRing', () => {
  it('places a request in slot AVAIL, publishes AVAIL + 1 and marks its stores in the vCPU log', () => {
    const memory = GuestMemory.allocate(1024 * 1024);
    const log = new DirtyLog(memory.pageCount);
    const ring = new GuestBlkRing(memory, RING, log.words);
    const req = { op: OP_WRITE, block: 77, count: 2, tag: 0xdead_beef, pages: [40, 41] };
    expect(ring.submit(req)).toBe(0);
    expect(ring.avail).toBe(1);
    expect(ring.outstanding).toBe(1);
    const offset = blkSlotOffset(RING, 0);
    const page = memory.page(offset >>> 12);
    expect(decodeRequest(new DataView(page.buffer, page.byteOffset, 4096), offset & 4095)).toEqual(req);
    expect([...log.harvest()]).toEqual([RING, RING + 1]);
  });

  it('refuses a request when BLK_RING_SLOTS are outstanding; completed() follows USED across the u32 wrap', () => {
    const memory = GuestMemory.allocate(1024 * 1024);
    const ring = new GuestBlkRing(memory, RING);
    const start = 0xffff_fff0;
    Atomics.store(ring.indices, W_AVAIL, start | 0);
    Atomics.store(ring.indices, W_USED, start | 0);
    const req = { op: OP_WRITE, block: 0, count: 1, tag: 0, pages: [40] };
    const placed: number[] = [];
    for (let k = 0; k < BLK_RING_SLOTS; k++) placed.push(ring.submit(req)!);
    expect(ring.submit(req)).toBeUndefined();
    expect(placed[0]).toBe(start);
    expect(placed[BLK_RING_SLOTS - 1]).toBe((start + BLK_RING_SLOTS - 1) >>> 0); // wrapped past 0
    Atomics.store(ring.indices, W_USED, (start + 20) | 0);
    expect(ring.completed(placed[19]!)).toBe(true);
    expect(ring.completed(placed[20]!)).toBe(false);
    expect(ring.submit(req)).toBe((start + BLK_RING_SLOTS) >>> 0);
  });
});
