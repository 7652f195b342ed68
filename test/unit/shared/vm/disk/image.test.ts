import { mkdtempSync, promises as fs, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ALLOC_MAP_SUFFIX,
  BLOCK_SIZE,
  DiskImage,
  MAX_DISK_BYTES,
  MIN_DISK_BYTES,
} from '../../../../../shared/src/vm/disk/image.ts';
import { LOCK_SUFFIX } from '../../../../../shared/src/vm/disk/lock.ts';

const code = (c: string) => expect.objectContaining({ code: c });
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** count blocks, block i filled with the byte (seed + i) & 255 (never 0). */
function pattern(count: number, seed: number): Uint8Array {
  const out = new Uint8Array(count * BLOCK_SIZE);
  for (let i = 0; i < count; i++) out.fill(((seed + i) % 255) + 1, i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
  return out;
}

let dir: string;
let images: DiskImage[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-disk-'));
  images = [];
});
afterEach(async () => {
  for (const image of images) await image.close();
  rmSync(dir, { recursive: true, force: true });
});
async function create(size: number, name = 'disk.img'): Promise<DiskImage> {
  const image = await DiskImage.create(join(dir, name), size);
  images.push(image);
  return image;
}

describe('DiskImage', () => {
  it('create() makes a sparse file of the size, all holes, reading as zeros', async () => {
    const image = await create(4 * MiB);
    expect(image.blockCount).toBe(1024);
    expect(image.allocationSource).toBe('created');
    expect(statSync(image.path).size).toBe(4 * MiB);
    expect(statSync(image.path).blocks).toBe(0);
    expect(image.allocatedBytes).toBe(0);
    expect((await image.readBlocks(0, 1024)).every((b) => b === 0)).toBe(true);
  });

  it('writes and reads whole blocks at any position, across holes and allocated runs', async () => {
    const image = await create(4 * MiB);
    await image.writeBlocks(10, pattern(3, 1));
    await image.writeBlocks(1023, pattern(1, 9));
    expect(await image.readBlocks(10, 3)).toEqual(pattern(3, 1));
    const mixed = await image.readBlocks(8, 7); // hole, hole, 3 written, hole, hole
    expect(mixed.subarray(0, 2 * BLOCK_SIZE).every((b) => b === 0)).toBe(true);
    expect(mixed.subarray(2 * BLOCK_SIZE, 5 * BLOCK_SIZE)).toEqual(pattern(3, 1));
    expect(mixed.subarray(5 * BLOCK_SIZE).every((b) => b === 0)).toBe(true);
    expect(await image.readBlocks(1023, 1)).toEqual(pattern(1, 9));
    expect([...image.allocated.toPageList()]).toEqual([10, 11, 12, 1023]);
    await image.flush();
  });

  it('marks written blocks in its dirty log after the write, harvested once', async () => {
    const image = await create(4 * MiB);
    await image.writeBlocks(5, pattern(2, 0));
    await image.writeBlocks(700, pattern(1, 0));
    expect([...image.dirtyLog.harvest()]).toEqual([5, 6, 700]);
    expect(image.dirtyLog.harvest().length).toBe(0);
    expect(image.allocated.count).toBe(3); // allocation outlives the harvest
  });

  it('a 16 GiB image with 64 MiB written allocates about 64 MiB on disk (st_blocks) and in its map', async () => {
    const image = await create(16 * GiB);
    const chunk = pattern(256, 3); // 1 MiB
    for (let i = 0; i < 64; i++) await image.writeBlocks(i * 65_536 + 17, chunk); // 1 MiB every 256 MiB
    await image.flush();
    const allocatedOnDisk = statSync(image.path).blocks * 512;
    expect(allocatedOnDisk).toBeGreaterThanOrEqual(64 * MiB);
    expect(allocatedOnDisk).toBeLessThan(66 * MiB);
    expect(image.allocatedBytes).toBe(64 * MiB);
    expect(statSync(image.path).size).toBe(16 * GiB);
  });

  it('reopens with the persisted map after a clean close (no scan) and the same contents', async () => {
    const path = join(dir, 'disk.img');
    const first = await DiskImage.create(path, 2 * MiB);
    await first.writeBlocks(3, pattern(2, 5));
    await first.close();
    const again = await DiskImage.open(path);
    images.push(again);
    expect(again.allocationSource).toBe('map');
    expect([...again.allocated.toPageList()]).toEqual([3, 4]);
    expect(await again.readBlocks(3, 2)).toEqual(pattern(2, 5));
    expect(again.dirtyLog.pendingCount).toBe(0);
  });

  it('readSpan reads a span in one go, holes as zeros; writeRunsSync writes runs, allocating and marking each block', async () => {
    const path = join(dir, 'disk.img');
    const image = await DiskImage.create(path, 2 * MiB);
    images.push(image);
    image.writeRunsSync([
      { first: 10, data: pattern(2, 3) },
      { first: 14, data: pattern(1, 9) },
    ]);
    expect([...image.allocated.toPageList()]).toEqual([10, 11, 14]);
    expect([...image.dirtyLog.harvest()]).toEqual([10, 11, 14]);
    const span = await image.readSpan(10, 5, new Uint8Array(5 * BLOCK_SIZE));
    expect(span.subarray(0, 2 * BLOCK_SIZE)).toEqual(pattern(2, 3));
    expect(span.subarray(2 * BLOCK_SIZE, 4 * BLOCK_SIZE)).toEqual(new Uint8Array(2 * BLOCK_SIZE)); // holes
    expect(span.subarray(4 * BLOCK_SIZE)).toEqual(pattern(1, 9));
    expect(() => image.writeRunsSync([{ first: 511, data: pattern(2, 1) }])).toThrow(
      expect.objectContaining({ code: 'ERR_BLOCK_OUT_OF_RANGE' }),
    );
    expect(image.allocated.has(511)).toBe(false); // checked before anything was written
  });

  it('is locked while open: a second opener is refused naming the holder, and may open it once closed', async () => {
    const path = join(dir, 'disk.img');
    const first = await DiskImage.create(path, 2 * MiB);
    await expect(DiskImage.open(path)).rejects.toMatchObject({
      code: 'ERR_DISK_IMAGE',
      message: expect.stringContaining(`in use by process ${process.pid} on ${hostname()}`),
    });
    await first.close();
    const second = await DiskImage.open(path);
    images.push(second);
    expect(readFileSync(path + LOCK_SUFFIX, 'utf8')).toContain(String(process.pid));
  });

  it('remove() drops the lock only after the files are gone: an image of the same name made meanwhile is refused, not robbed of its map', async () => {
    const path = join(dir, 'disk.img');
    const old = await DiskImage.create(path, 2 * MiB);
    await old.writeBlocks(3, pattern(1, 1));
    // Removing a large file can be slow (a filesystem mounted with discard): make the image's own removal slow.
    const rm = fs.rm.bind(fs);
    let slow!: () => void;
    const slowed = new Promise<void>((resolve) => (slow = resolve));
    const spy = vi.spyOn(fs, 'rm').mockImplementation(async (target, options) => {
      if (target === path) await slowed;
      return rm(target, options);
    });
    try {
      const removing = old.remove();
      // A VM migrating straight back makes its image here while the old one is being removed: refused.
      await expect(DiskImage.create(path, 2 * MiB)).rejects.toMatchObject({ code: 'ERR_DISK_IMAGE' });
      slow();
      await removing;
      const order = spy.mock.calls.map(([target]) => String(target));
      expect(order.slice(-1)).toEqual([path + LOCK_SUFFIX]); // the lock last
      expect(order).toContain(path);
      expect(order).toContain(path + ALLOC_MAP_SUFFIX);
    } finally {
      spy.mockRestore();
    }
    const fresh = await DiskImage.create(path, 2 * MiB);
    await fresh.writeBlocks(7, pattern(1, 2));
    await fresh.close();
    const reopened = await DiskImage.open(path);
    images.push(reopened);
    expect(reopened.allocationSource).toBe('map'); // its map survived: no crash-recovery scan
    expect([...reopened.allocated.toPageList()]).toEqual([7]);
  });

  it('rebuilds the map by scanning when the image was not closed (crash) or the map is missing', async () => {
    const path = join(dir, 'disk.img');
    const crashed = await DiskImage.create(path, 2 * MiB);
    await crashed.writeBlocks(7, pattern(1, 1));
    await crashed.writeBlocks(300, pattern(2, 1));
    await crashed.flush(); // …and the process dies without close(): the map says IN_USE, and
    // its lock names a process that is gone (a pid above any pid_max): taken over, not refused
    writeFileSync(path + LOCK_SUFFIX, JSON.stringify({ host: hostname(), pid: 0x3fff_ffff }));
    const recovered = await DiskImage.open(path);
    expect(recovered.allocationSource).toBe('scan');
    expect([...recovered.allocated.toPageList()]).toEqual([7, 300, 301]);
    await recovered.close();
    rmSync(path + ALLOC_MAP_SUFFIX);
    const noMap = await DiskImage.open(path);
    images.push(noMap);
    expect(noMap.allocationSource).toBe('scan');
    expect(noMap.allocated.count).toBe(3);
    await crashed.close(); // the dead process's handles (its map file was removed above)
  });

  it('rejects block numbers and counts outside the disk with ERR_BLOCK_OUT_OF_RANGE', async () => {
    const image = await create(MIN_DISK_BYTES); // 256 blocks
    for (const [first, count] of [
      [-1, 1],
      [256, 1],
      [255, 2],
      [0, 0],
      [0, 257],
      [1.5, 1],
      [0, NaN],
      [2 ** 53, 1],
    ] as const) {
      await expect(image.readBlocks(first, count)).rejects.toThrow(code('ERR_BLOCK_OUT_OF_RANGE'));
    }
    await expect(image.writeBlocks(256, pattern(1, 0))).rejects.toThrow(code('ERR_BLOCK_OUT_OF_RANGE'));
    await expect(image.writeBlocks(255, pattern(2, 0))).rejects.toThrow(code('ERR_BLOCK_OUT_OF_RANGE'));
    await expect(image.writeBlocks(0, new Uint8Array(100))).rejects.toThrow(code('ERR_INVALID_ARGUMENT'));
    await expect(image.readBlocks(0, 2, new Uint8Array(BLOCK_SIZE))).rejects.toThrow(code('ERR_INVALID_ARGUMENT'));
    expect(image.allocated.count).toBe(0);
  });

  it.each([0, MIN_DISK_BYTES - BLOCK_SIZE, MIN_DISK_BYTES + 1, MAX_DISK_BYTES + BLOCK_SIZE, NaN])(
    'create() refuses a size of %s bytes with ERR_INVALID_SIZE',
    async (size) => {
      await expect(DiskImage.create(join(dir, 'bad.img'), size)).rejects.toThrow(code('ERR_INVALID_SIZE'));
    },
  );

  it('create() refuses to overwrite a file; open() refuses a missing or odd-sized one (ERR_DISK_IMAGE)', async () => {
    const path = join(dir, 'taken.img');
    writeFileSync(path, 'precious');
    await expect(DiskImage.create(path, MIN_DISK_BYTES)).rejects.toThrow(code('ERR_DISK_IMAGE'));
    await expect(DiskImage.open(path)).rejects.toThrow(code('ERR_DISK_IMAGE'));
    await expect(DiskImage.open(join(dir, 'missing.img'))).rejects.toThrow(code('ERR_DISK_IMAGE'));
  });

  it('refuses everything after close() with ERR_DISK_IMAGE', async () => {
    const image = await create(MIN_DISK_BYTES);
    await image.close();
    await expect(image.readBlocks(0, 1)).rejects.toThrow(code('ERR_DISK_IMAGE'));
    await expect(image.writeBlocks(0, pattern(1, 0))).rejects.toThrow(code('ERR_DISK_IMAGE'));
    await expect(image.flush()).rejects.toThrow(code('ERR_DISK_IMAGE'));
  });
});
