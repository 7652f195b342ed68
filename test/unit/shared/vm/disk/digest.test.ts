import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestMemory } from '../../../../../shared/src/vm/digest.ts';
import { digestDisk } from '../../../../../shared/src/vm/disk/digest.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import { GuestMemory } from '../../../../../shared/src/vm/guest-memory.ts';

const BYTES = 2 * 1024 * 1024;
let dir: string;
let image: DiskImage;
let memory: GuestMemory;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-disk-digest-'));
  image = await DiskImage.create(join(dir, 'disk.img'), BYTES);
  memory = GuestMemory.allocate(BYTES);
});
afterEach(async () => {
  await image.close();
  memory.release();
  rmSync(dir, { recursive: true, force: true });
});

describe('digestDisk', () => {
  it('is the memory digest with a block for a page: holes count as zero blocks, and so do written zeros', async () => {
    expect(await digestDisk(image)).toBe(await digestMemory(memory));
    await image.writeBlocks(7, new Uint8Array(BLOCK_SIZE)); // allocated, but zero
    expect(image.allocatedBytes).toBe(BLOCK_SIZE);
    expect(await digestDisk(image)).toBe(await digestMemory(memory));
  });

  it('follows the bytes, in block order, across allocated runs', async () => {
    const data = new Uint8Array(3 * BLOCK_SIZE).map((_, i) => (i * 7 + 1) & 255);
    await image.writeBlocks(254, data); // a run across a read chunk's end
    await image.writeBlocks(511, data.subarray(0, BLOCK_SIZE)); // the last block
    for (let k = 0; k < 3; k++) memory.writePage(254 + k, data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
    memory.writePage(511, data.subarray(0, BLOCK_SIZE));
    const digest = await digestDisk(image);
    expect(digest).toBe(await digestMemory(memory));
    await image.writeBlocks(255, new Uint8Array(BLOCK_SIZE).fill(9));
    expect(await digestDisk(image)).not.toBe(digest);
  });
});
