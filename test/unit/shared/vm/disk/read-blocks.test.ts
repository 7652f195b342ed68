import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE, DiskImage } from '../../../../../shared/src/vm/disk/image.ts';
import { readBlockList, SpanScratch } from '../../../../../shared/src/vm/disk/read-blocks.ts';

const BLOCKS = 512;
let dir: string;
let image: DiskImage;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-read-blocks-'));
  image = await DiskImage.create(join(dir, 'disk.img'), BLOCKS * BLOCK_SIZE);
  // Every third block written, each with its own bytes; the rest are holes.
  const runs = [];
  for (let b = 0; b < BLOCKS; b += 3) runs.push({ first: b, data: new Uint8Array(BLOCK_SIZE).fill((b % 251) + 1) });
  image.writeRunsSync(runs);
});
afterAll(async () => {
  await image.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What block `b` holds: its byte, or zeros for a hole. */
const expected = (b: number): number => (b % 3 === 0 ? (b % 251) + 1 : 0);

const lists = fc
  .uniqueArray(fc.integer({ min: 0, max: BLOCKS - 1 }), { minLength: 0, maxLength: 256 })
  .map((l) => Uint32Array.from(l.sort((a, b) => a - b)));

describe('readBlockList', () => {
  it('reads any ascending list — dense, sparse or scattered — block i at i × BLOCK_SIZE, with or without scratch and into', async () => {
    const scratch = new SpanScratch(); // one scratch across every read, of every size
    const into = new Uint8Array(300 * BLOCK_SIZE).fill(0xee);
    await fc.assert(
      fc.asyncProperty(lists, fc.constantFrom('new', 'scratch', 'into'), async (blocks, how) => {
        const data = await readBlockList(
          image,
          blocks,
          how === 'scratch' ? { scratch } : how === 'into' ? { scratch, into } : {},
        );
        expect(data.length).toBe(blocks.length * BLOCK_SIZE);
        if (how === 'into') expect(data.buffer).toBe(into.buffer);
        for (let i = 0; i < blocks.length; i++) {
          const block = data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
          const want = expected(blocks[i]!);
          expect(block[0]).toBe(want);
          expect(block[BLOCK_SIZE - 1]).toBe(want);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses an `into` too small for the list (ERR_INVALID_ARGUMENT)', async () => {
    await expect(readBlockList(image, [0, 1], { into: new Uint8Array(BLOCK_SIZE) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });
});
