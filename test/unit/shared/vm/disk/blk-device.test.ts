import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DirtyLog } from '../../../../../shared/src/vm/dirty-log.ts';
import { BlkDevice } from '../../../../../shared/src/vm/disk/blk-device.ts';
import { GuestBlkRing } from '../../../../../shared/src/vm/disk/guest-ring.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import {
  BLK_RING_PAGES,
  BLK_RING_SLOTS,
  OP_FLUSH,
  OP_READ,
  OP_WRITE,
  S_INVALID,
  S_IOERR,
  S_OK,
  S_UNSUPP,
  W_AVAIL,
  type BlkRequest,
} from '../../../../../shared/src/vm/disk/layout.ts';
import { GuestMemory } from '../../../../../shared/src/vm/guest-memory.ts';

const code = (c: string) => expect.objectContaining({ code: c });
const RING = 4; // the ring's first page (the NIC would have 0–8 in a real VM)
const ringPages = Array.from({ length: BLK_RING_PAGES }, (_, k) => RING + k);

interface Rig {
  memory: GuestMemory;
  dmaLog: DirtyLog;
  image: DiskImage;
  device: BlkDevice;
  guest: GuestBlkRing;
  kick: ReturnType<typeof vi.fn<() => void>>;
}

let dir: string;
let rig: Rig;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-blk-'));
  const memory = GuestMemory.allocate(1024 * 1024); // 256 pages
  const dmaLog = new DirtyLog(memory.pageCount);
  const image = await DiskImage.create(join(dir, 'disk.img'), 4 * 1024 * 1024); // 1024 blocks
  const kick = vi.fn<() => void>();
  const device = new BlkDevice({ memory, dmaLog, image, ringPage: RING, kick });
  rig = { memory, dmaLog, image, device, guest: new GuestBlkRing(memory, RING), kick };
});
afterEach(async () => {
  rig.device.close();
  await rig.image.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Guest page p filled with a pattern of its own: byte i = (seed + p + i) & 255. */
function fillPage(p: number, seed: number): Uint8Array {
  const page = rig.memory.page(p);
  for (let i = 0; i < BLOCK_SIZE; i++) page[i] = (seed + p + i) & 255;
  return page.slice();
}

function submit(req: Omit<BlkRequest, 'tag'> & { tag?: number }): number {
  const index = rig.guest.submit({ tag: 0, ...req });
  if (index === undefined) throw new Error('ring full');
  return index;
}

describe('BlkDevice', () => {
  it('serves a write into the file and a read back into other guest pages: same data, read pages dirtied', async () => {
    const { guest, device, dmaLog, image, memory } = rig;
    const written = [20, 21, 22].map((p) => fillPage(p, 7));
    const w = submit({ op: OP_WRITE, block: 500, count: 3, pages: [20, 21, 22] });
    expect(await device.serve()).toBe(1);
    expect(guest.completed(w)).toBe(true);
    expect(guest.status(w)).toBe(S_OK);
    const file = readFileSync(image.path);
    for (let k = 0; k < 3; k++) {
      expect(file.subarray((500 + k) * BLOCK_SIZE, (501 + k) * BLOCK_SIZE)).toEqual(Buffer.from(written[k]!));
    }
    expect([...image.allocated.toPageList()]).toEqual([500, 501, 502]);
    expect([...image.dirtyLog.harvest()]).toEqual([500, 501, 502]);
    expect([...dmaLog.harvest()]).toEqual([RING, RING + 1]); // status and USED only: a write stores no data

    for (const p of [60, 90, 61, 200]) memory.page(p).fill(0xaa);
    const r = submit({ op: OP_READ, block: 499, count: 4, pages: [60, 90, 61, 200] }); // a hole, then the 3 written
    expect(guest.completed(r)).toBe(false);
    await device.serve();
    expect(guest.status(r)).toBe(S_OK);
    expect(memory.page(60).every((b) => b === 0)).toBe(true);
    expect(memory.page(90)).toEqual(written[0]);
    expect(memory.page(61)).toEqual(written[1]);
    expect(memory.page(200)).toEqual(written[2]);
    expect([...dmaLog.harvest()]).toEqual([RING, RING + 1, 60, 61, 90, 200]);
    expect(image.dirtyLog.pendingCount).toBe(0); // a read dirties no block
    expect(device.counters).toMatchObject({ reads: 1, writes: 1, blocksRead: 4, blocksWritten: 3, refused: 0 });
    expect(rig.kick).toHaveBeenCalledTimes(2);
  });

  it('serves requests in ring order: a flush after writes completes after them, with S_OK', async () => {
    const { guest, device } = rig;
    fillPage(30, 1);
    const a = submit({ op: OP_WRITE, block: 0, count: 1, pages: [30] });
    const b = submit({ op: OP_WRITE, block: 1023, count: 1, pages: [30] });
    const f = submit({ op: OP_FLUSH, block: 0, count: 0, pages: [] });
    expect(guest.outstanding).toBe(3);
    expect(await device.serve()).toBe(3);
    expect([a, b, f].map((i) => guest.status(i))).toEqual([S_OK, S_OK, S_OK]);
    expect(guest.outstanding).toBe(0);
    expect(device.counters).toMatchObject({ writes: 2, flushes: 1 });
  });

  it('completes malformed requests with an error status, touching no guest memory outside the ring and no block', async () => {
    const { guest, device, dmaLog, image, memory } = rig;
    for (let p = 0; p < memory.pageCount; p++) if (!ringPages.includes(p)) fillPage(p, 3);
    fillPage(50, 9); // the buffer of the good request at the end
    const before = memory.pageRun(0, memory.pageCount).slice();
    const bad: (Omit<BlkRequest, 'tag'> & { status: number })[] = [
      { op: OP_READ, block: 1024, count: 1, pages: [40], status: S_INVALID }, // past the end
      { op: OP_READ, block: 1020, count: 5, pages: [40, 41, 42, 43, 44], status: S_INVALID }, // runs off the end
      { op: OP_READ, block: 0xffff_ffff, count: 2, pages: [40, 41], status: S_INVALID }, // u32 wrap
      { op: OP_READ, block: 0, count: 0, pages: [], status: S_INVALID },
      { op: OP_READ, block: 0, count: 9, pages: [40, 41, 42, 43, 44, 45, 46, 47], status: S_INVALID }, // > MAX
      { op: OP_READ, block: 0, count: 2, pages: [40, 256], status: S_INVALID }, // page outside memory
      { op: OP_READ, block: 0, count: 2, pages: [40, RING + 1], status: S_INVALID }, // a read into the ring
      { op: OP_WRITE, block: 0, count: 1, pages: [0xffff_ffff], status: S_INVALID },
      { op: 7, block: 0, count: 1, pages: [40], status: S_UNSUPP },
    ];
    const indices = bad.map((req) => submit(req));
    const good = submit({ op: OP_WRITE, block: 2, count: 1, pages: [50] });
    expect(await device.serve()).toBe(bad.length + 1);
    expect(indices.map((i) => guest.status(i))).toEqual(bad.map((r) => r.status));
    expect(guest.status(good)).toBe(S_OK); // the ring keeps working after them
    expect([...image.allocated.toPageList()]).toEqual([2]);
    const now = memory.pageRun(0, memory.pageCount);
    const changed: number[] = [];
    for (let p = 0; p < memory.pageCount; p++) {
      const slice = (m: Uint8Array) => Buffer.from(m.buffer, m.byteOffset + p * BLOCK_SIZE, BLOCK_SIZE);
      if (!ringPages.includes(p) && !slice(now).equals(slice(before))) changed.push(p);
    }
    expect(changed).toEqual([]);
    expect([...dmaLog.harvest()].every((p) => ringPages.includes(p))).toBe(true);
    expect(device.counters).toMatchObject({ refused: bad.length, reads: 0, writes: 1 });
  });

  it('completes with S_IOERR when the file system fails (the image is closed)', async () => {
    const { guest, device, image } = rig;
    await image.close();
    const r = submit({ op: OP_READ, block: 0, count: 1, pages: [40] });
    const f = submit({ op: OP_FLUSH, block: 0, count: 0, pages: [] });
    await device.serve();
    expect([guest.status(r), guest.status(f)]).toEqual([S_IOERR, S_IOERR]);
    expect(device.counters.ioErrors).toBe(2);
  });

  it('serves only the last BLK_RING_SLOTS requests of a guest that claims more, without throwing', async () => {
    const { device, memory } = rig;
    const idx = new Int32Array(memory.page(RING).buffer, memory.page(RING).byteOffset, 1024);
    Atomics.store(idx, W_AVAIL, BLK_RING_SLOTS * 3); // slots never filled: all zeros = read block 0, count 0
    expect(await device.serve()).toBe(BLK_RING_SLOTS);
    expect(device.pending()).toBe(false);
    expect(device.counters.refused).toBe(BLK_RING_SLOTS);
  });

  it('waitForRequests() resolves on the guest kick, on abort and on close', async () => {
    const { device } = rig;
    const waiting = device.waitForRequests();
    let resolved = false;
    void waiting.then(() => (resolved = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(resolved).toBe(false);
    submit({ op: OP_FLUSH, block: 0, count: 0, pages: [] });
    await waiting;
    expect(device.pending()).toBe(true);
    await device.serve();

    const controller = new AbortController();
    const aborted = device.waitForRequests(controller.signal);
    controller.abort();
    await aborted;
    const closed = device.waitForRequests();
    device.close();
    await closed;
    expect(await device.serve()).toBe(0);
  });

  it('refuses a ring that does not fit guest memory, or a DMA log of another size', () => {
    const { memory, dmaLog, image, kick } = rig;
    expect(() => new BlkDevice({ memory, dmaLog, image, kick, ringPage: memory.pageCount - 2 })).toThrow(
      code('ERR_INVALID_ARGUMENT'),
    );
    expect(() => new BlkDevice({ memory, dmaLog, image, kick, ringPage: -1 })).toThrow(code('ERR_INVALID_ARGUMENT'));
    expect(() => new BlkDevice({ memory, dmaLog: new DirtyLog(10), image, kick, ringPage: RING })).toThrow(
      code('ERR_INVALID_ARGUMENT'),
    );
  });
});
