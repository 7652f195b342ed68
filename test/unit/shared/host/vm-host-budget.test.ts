/**
 * VmHost's guest-memory budget: hosted VMs plus reservations, each charged its memory plus
 * VM_OVERHEAD_BYTES, checked before anything is allocated.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VM_OVERHEAD_BYTES } from '@livemig/shared';
import { VmHost } from '@livemig/shared/host';
import { parseVmSpec, ToyVm } from '@livemig/shared/vm';

const MiB = 2 ** 20;
const spec = (memory: string) => parseVmSpec({ memory, init: 'zero', workload: 'idle', seed: 1 });
/** What a VM of `mib` MiB is charged. */
const charge = (mib: number): number => mib * MiB + VM_OVERHEAD_BYTES;
let host: VmHost;

afterEach(async () => {
  await host.removeAll();
});

describe('VmHost guest-memory budget', () => {
  it('counts hosted VMs: create-vm past the budget is refused (ERR_NO_MEMORY), the rest untouched', async () => {
    host = new VmHost({ maxGuestMemoryBytes: 2 * charge(4) });
    await host.create('a', spec('4MiB'));
    await host.create('b', spec('4MiB'));
    expect(host.guestMemory).toEqual({ budgetBytes: 2 * charge(4), hostedBytes: 2 * charge(4), reservedBytes: 0 });
    // Even the smallest VM costs its vCPU worker.
    await expect(host.create('c', spec('1MiB'))).rejects.toMatchObject({ code: 'ERR_NO_MEMORY' });
    expect(host.list().map((vm) => vm.name)).toEqual(['a', 'b']);
    // A VM that leaves frees its share.
    await host.retire('a');
    await host.create('c', spec('4MiB'));
    expect(host.guestMemory.hostedBytes).toBe(2 * charge(4));
  });

  it('a reservation holds the name and the memory until adopted or released', async () => {
    host = new VmHost({ maxGuestMemoryBytes: charge(8) });
    const reservation = host.reserve('incoming', 6 * MiB);
    expect(host.guestMemory).toMatchObject({ hostedBytes: 0, reservedBytes: charge(6) });
    expect(host.isFree('incoming')).toBe(false);
    // Concurrent claims see the reservation: the name is taken, the memory is not there.
    expect(host.refuses('incoming', MiB)).toMatchObject({ code: 'ERR_BUSY' });
    expect(() => host.reserve('other', MiB)).toThrow(expect.objectContaining({ code: 'ERR_NO_MEMORY' }));
    await expect(host.create('other', spec('1MiB'))).rejects.toMatchObject({ code: 'ERR_NO_MEMORY' });
    // Adopted: the memory now counts as hosted, and a late release() changes nothing.
    host.adopt('incoming', await ToyVm.createIncoming(spec('6MiB'), { postcopy: false }), 'incoming');
    reservation.release();
    expect(host.guestMemory).toMatchObject({ hostedBytes: charge(6), reservedBytes: 0 });
    // Discarded (a failed incoming migration): all of it comes back.
    await host.remove('incoming');
    const again = host.reserve('incoming', 8 * MiB);
    again.release();
    again.release();
    expect(host.guestMemory).toEqual({ budgetBytes: charge(8), hostedBytes: 0, reservedBytes: 0 });
  });

  it('a release() of an old reservation leaves a newer one of the same name alone', () => {
    host = new VmHost({ maxGuestMemoryBytes: charge(8) });
    const old = host.reserve('vm', MiB);
    old.release();
    host.reserve('vm', 2 * MiB);
    old.release();
    expect(host.guestMemory.reservedBytes).toBe(charge(2));
    expect(host.isFree('vm')).toBe(false);
  });
});
