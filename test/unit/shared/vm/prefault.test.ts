/**
 * The prefault worker (prefault.ts): it touches the pages it is given, changes no byte, and
 * stops by itself when the memory is released (the VM was destroyed), so it never keeps
 * faulting in the memory of a VM that is gone.
 */
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../../../shared/src/vm/guest-memory.ts';
import { startPrefault } from '../../../../shared/src/vm/prefault.ts';

const MiB = 1024 * 1024;

describe('startPrefault', () => {
  it('touches every page it is given and changes nothing', async () => {
    const memory = GuestMemory.allocate(2 * MiB, { regionBytes: MiB });
    memory.page(300)[0] = 7;
    const pages = Uint32Array.from({ length: memory.pageCount }, (_, n) => n);
    expect(await startPrefault(memory, pages).done).toBe(memory.pageCount);
    expect(memory.page(300)[0]).toBe(7);
    expect(memory.isZeroPage(299)).toBe(true);
  });

  it('stops when the memory is released, before touching the pages', async () => {
    const memory = GuestMemory.allocate(64 * MiB);
    const pages = Uint32Array.from({ length: memory.pageCount }, (_, n) => n);
    const prefault = startPrefault(memory, pages);
    memory.release(); // before the worker has even started: it must not touch a single page
    expect(await prefault.done).toBe(0);
  });
});
