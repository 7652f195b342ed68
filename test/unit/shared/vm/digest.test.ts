import { createXXHash64 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { PageDigestLedger, digestMemory } from '../../../../shared/src/vm/digest.ts';
import { GuestMemory, PAGE_SIZE } from '../../../../shared/src/vm/guest-memory.ts';
import { initialiseMemory } from '../../../../shared/src/vm/init.ts';

const MiB = 1024 * 1024;

/** The definition, computed the slow obvious way: xxhash64 of the concatenated per-page xxhash64s. */
async function referenceDigest(bytes: Uint8Array): Promise<string> {
  const page = await createXXHash64();
  const all = await createXXHash64();
  all.init();
  for (let o = 0; o < bytes.length; o += PAGE_SIZE) {
    page.init();
    page.update(bytes.slice(o, o + PAGE_SIZE));
    all.update(page.digest('binary'));
  }
  return all.digest('hex');
}

describe('digestMemory', () => {
  it('is xxhash64 over per-page xxhash64s in page order, across regions', async () => {
    const memory = GuestMemory.allocate(3 * MiB, { regionBytes: MiB });
    await initialiseMemory(memory, { kind: 'mixed', zeroFraction: 0.5 }, 5);
    const flat = new Uint8Array(3 * MiB);
    for (let r = 0; r < 3; r++) flat.set(memory.region(r), r * MiB);
    const digest = await digestMemory(memory);
    expect(digest).toMatch(/^[0-9a-f]{16}$/);
    expect(digest).toBe(await referenceDigest(flat));
  });

  it('depends on the bytes only, not on the region size', async () => {
    const a = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    const b = GuestMemory.allocate(2 * MiB);
    await initialiseMemory(a, { kind: 'random' }, 9);
    await initialiseMemory(b, { kind: 'random' }, 9);
    expect(await digestMemory(a)).toBe(await digestMemory(b));
  });

  it('changes when one bit changes, or when pages swap', async () => {
    const memory = GuestMemory.allocate(MiB);
    memory.page(1)[0] = 1;
    const before = await digestMemory(memory);
    memory.page(200)[4095]! ^= 0x10;
    const flipped = await digestMemory(memory);
    memory.page(200)[4095]! ^= 0x10;
    expect(flipped).not.toBe(before);
    expect(await digestMemory(memory)).toBe(before);
    memory.page(1)[0] = 0;
    memory.page(2)[0] = 1; // same bytes, other page
    expect(await digestMemory(memory)).not.toBe(before);
  });
});

describe('PageDigestLedger', () => {
  it('equals digestMemory of the pages recorded, in any order, unrecorded pages zero', async () => {
    const memory = GuestMemory.allocate(MiB);
    await initialiseMemory(memory, { kind: 'mixed', zeroFraction: 0.7 }, 2);
    const ledger = new PageDigestLedger(memory.pageCount);
    const pages = memory.touched.toPageList().reverse();
    for (const n of pages) ledger.update(n, memory.page(n));
    expect(ledger.digest()).toBe(await digestMemory(memory));
    ledger.update(pages[0]!, new Uint8Array(PAGE_SIZE).fill(1)); // a later version wins
    expect(ledger.digest()).not.toBe(await digestMemory(memory));
    ledger.update(pages[0]!, memory.page(pages[0]!));
    expect(ledger.digest()).toBe(await digestMemory(memory));
  });

  it('rejects bad pages and sizes', () => {
    const ledger = new PageDigestLedger(4);
    expect(() => ledger.update(4, new Uint8Array(PAGE_SIZE))).toThrow(
      expect.objectContaining({ code: 'ERR_PAGE_OUT_OF_RANGE' }),
    );
    expect(() => ledger.update(0, new Uint8Array(1))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});
