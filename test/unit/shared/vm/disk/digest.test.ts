import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createXXHash64 } from 'hash-wasm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestMemory } from '../../../../../shared/src/vm/digest.ts';
import { digestDisk } from '../../../../../shared/src/vm/disk/digest.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import { BlockDigestLedger, CHUNK_BLOCKS } from '../../../../../shared/src/vm/disk/ledger.ts';
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

/** A disk of one chunk: its digest is xxhash64 over the chunk hash, which is the memory digest's value. */
async function oneChunkDigest(memoryDigestHex: string): Promise<string> {
  const h = await createXXHash64();
  h.init();
  h.update(Uint8Array.from(Buffer.from(memoryDigestHex, 'hex')));
  return h.digest('hex');
}

describe('digestDisk', () => {
  it('is per block, per chunk, then over the chunks: holes count as zero blocks, and so do written zeros', async () => {
    const empty = await oneChunkDigest(await digestMemory(memory));
    expect(await digestDisk(image)).toBe(empty);
    await image.writeBlocks(7, new Uint8Array(BLOCK_SIZE)); // allocated, but zero
    expect(image.allocatedBytes).toBe(BLOCK_SIZE);
    expect(await digestDisk(image)).toBe(empty);
  });

  it('follows the bytes, in block order, across allocated runs', async () => {
    const data = new Uint8Array(3 * BLOCK_SIZE).map((_, i) => (i * 7 + 1) & 255);
    await image.writeBlocks(254, data); // a run across a read chunk's end
    await image.writeBlocks(511, data.subarray(0, BLOCK_SIZE)); // the last block
    for (let k = 0; k < 3; k++) memory.writePage(254 + k, data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
    memory.writePage(511, data.subarray(0, BLOCK_SIZE));
    const digest = await digestDisk(image);
    expect(digest).toBe(await oneChunkDigest(await digestMemory(memory)));
    await image.writeBlocks(255, new Uint8Array(BLOCK_SIZE).fill(9));
    expect(await digestDisk(image)).not.toBe(digest);
  });
});

describe('BlockDigestLedger', () => {
  it('equals digestDisk of an image holding the blocks it was given, in any order, last bytes winning', async () => {
    const ledger = new BlockDigestLedger(image.blockCount);
    const a = new Uint8Array(BLOCK_SIZE).fill(1);
    const b = new Uint8Array(BLOCK_SIZE).fill(2);
    ledger.update(300, b);
    ledger.update(3, b);
    ledger.update(3, a); // re-sent: the later copy wins
    await image.writeBlocks(3, a);
    await image.writeBlocks(300, b);
    expect(ledger.digest()).toBe(await digestDisk(image));
  });

  it('covers a sparse disk of several chunks (the last one short) without touching the rest', async () => {
    const blocks = 2 * CHUNK_BLOCKS + 5;
    const big = await DiskImage.create(join(dir, 'big.img'), blocks * BLOCK_SIZE);
    try {
      const ledger = new BlockDigestLedger(blocks);
      const empty = ledger.digest();
      expect(empty).toBe(await digestDisk(big));
      const data = new Uint8Array(2 * BLOCK_SIZE).fill(0x5a);
      ledger.updateRun(CHUNK_BLOCKS - 1, data); // across the chunk boundary
      ledger.update(blocks - 1, data.subarray(0, BLOCK_SIZE)); // in the short last chunk
      await big.writeBlocks(CHUNK_BLOCKS - 1, data);
      await big.writeBlocks(blocks - 1, data.subarray(0, BLOCK_SIZE));
      expect(ledger.digest()).toBe(await digestDisk(big));
      expect(ledger.digest()).not.toBe(empty);
    } finally {
      await big.close();
    }
  });

  it('refuses a block outside the disk and a buffer that is not one block', () => {
    const ledger = new BlockDigestLedger(8);
    expect(() => ledger.update(8, new Uint8Array(BLOCK_SIZE))).toThrow(/ERR_BLOCK_OUT_OF_RANGE|outside/);
    expect(() => ledger.update(0, new Uint8Array(10))).toThrow(/a block is/);
  });
});
