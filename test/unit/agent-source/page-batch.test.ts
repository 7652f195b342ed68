import { describe, expect, it } from 'vitest';
import { PageKind } from '@livemig/shared/protocol';
import { GuestMemory } from '@livemig/shared/vm';
import { encodeBatch } from '../../../agent-source/src/migration/sections/ram/page-batch.ts';
import { MigrationStats } from '../../../agent-source/src/migration/stats.ts';

function memoryWithPage1Written(): GuestMemory {
  const memory = GuestMemory.allocate(1 << 20);
  memory.page(1).fill(7);
  return memory;
}

describe('encodeBatch', () => {
  it('sends zero pages as zero records when the peer negotiated zero-pages', () => {
    const stats = new MigrationStats();
    const seen: Array<[number, boolean]> = [];
    const batch = encodeBatch(Uint32Array.from([0, 1, 2]), {
      memory: memoryWithPage1Written(),
      stats,
      zeroPages: true,
      onPageSent: (page, bytes) => seen.push([page, bytes !== null]),
    });
    expect([...batch.kinds]).toEqual([PageKind.Zero, PageKind.Raw, PageKind.Zero]);
    expect(batch.views).toHaveLength(1);
    expect(batch.payloadBytes).toBe(4096);
    expect(stats).toMatchObject({ zeroPages: 2, rawPages: 1, pagePayloadBytes: 4096 });
    expect(seen).toEqual([
      [0, false],
      [1, true],
      [2, false],
    ]);
  });

  it('sends every page raw when it did not (a feature not negotiated is not used)', () => {
    const stats = new MigrationStats();
    const batch = encodeBatch(Uint32Array.from([0, 1, 2]), {
      memory: memoryWithPage1Written(),
      stats,
      zeroPages: false,
      onPageSent: () => {},
    });
    expect([...batch.kinds]).toEqual([PageKind.Raw, PageKind.Raw, PageKind.Raw]);
    expect(batch.views).toHaveLength(3);
    expect(stats).toMatchObject({ zeroPages: 0, rawPages: 3, pagePayloadBytes: 3 * 4096 });
  });
});
