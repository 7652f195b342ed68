/**
 * A VM's disk keeps its digest ledger as its guest writes (VirtualDisk.ledger): at any pause it
 * equals the digest of the image read whole — what lets a shared-storage switchover hand the
 * image over without reading it on the source.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseVmSpec, ToyVm } from '../../../../../shared/src/vm/index.ts';

const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

describe('VirtualDisk.ledger', () => {
  it('equals digestDisk of the image after the guest wrote and overwrote blocks', async () => {
    const spec = parseVmSpec({ memory: '8MiB', workload: 'disk:wss=256KiB,rate=0,rw=30', seed: 5, disk: '4MiB' });
    const vm = await ToyVm.boot(spec);
    vms.push(vm);
    const disk = vm.virtualDisk!;
    const empty = disk.ledger.digest();
    expect(empty).toBe(await vm.diskDigest());
    await vm.runSteps(3000, { fullSpeed: true }); // ~1000 writes over 64 blocks: each written many times
    expect(vm.disk!.allocatedBytes).toBeGreaterThan(0);
    const digest = await vm.diskDigest();
    expect(disk.ledger.digest()).toBe(digest);
    expect(digest).not.toBe(empty);
  });
});
