import { afterEach, describe, expect, it } from 'vitest';
import {
  checkAbInvariant,
  cloneVm,
  diffSnapshots,
  runReference,
  snapshotVm,
} from '../../../../shared/src/vm/oracle.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

// 2 MiB in 1 MiB regions: small, but every workload crosses a region boundary.
const options = { regionBytes: 1024 * 1024 };
const STEPS = 50_000;
const cases = [
  { workload: 'idle:hz=0', init: 'random' },
  { workload: 'uniform:rate=0', init: 'random' },
  { workload: 'hotset:wss=256KiB,rate=0', init: 'random' },
  { workload: 'sweep:rate=0', init: 'mixed:0.5' },
  { workload: 'ab:rate=0', init: 'zero' },
];

const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

describe.each(cases)('determinism oracle: $workload', ({ workload, init }) => {
  const spec = parseVmSpec({ memory: '2MiB', init, workload, seed: 99 });

  it('two VMs from the same spec and seed, run to the same step, are equal (and another seed is not)', async () => {
    const [a, b, other] = await Promise.all([
      runReference(spec, STEPS, options),
      runReference(spec, STEPS),
      runReference({ ...spec, seed: 100 }, STEPS, options),
    ]);
    expect(a.steps).toBe(STEPS);
    expect(diffSnapshots(a, b)).toEqual([]);
    expect(diffSnapshots(a, other)).not.toEqual([]);
  });

  it('a VM copied mid-run into a fresh VM, then run on, equals a never-copied reference', async () => {
    const reference = await runReference(spec, STEPS, options);
    const original = await ToyVm.boot(spec, options);
    vms.push(original);
    await original.runSteps(STEPS / 2 - 7, { fullSpeed: true });
    const copy = await cloneVm(original, options);
    vms.push(copy);
    await original.destroy(); // the copy must not depend on it
    await copy.runSteps(STEPS - copy.steps, { fullSpeed: true });
    expect(diffSnapshots(await snapshotVm(copy), reference)).toEqual([]);
  });

  it('the state after N steps does not depend on pacing, throttle or pauses', async () => {
    const vm = await ToyVm.boot(spec, options);
    vms.push(vm);
    vm.setThrottle(0.3);
    for (const chunk of [1, 4095, 4097, 333, 10_000]) await vm.runSteps(chunk); // throttled, odd batch edges
    vm.setThrottle(1);
    vm.start(); // free run, stopped wherever the pause lands
    await vm.pause();
    await vm.runSteps(1000, { fullSpeed: true });
    const reference = await runReference(spec, vm.steps, options);
    expect(diffSnapshots(await snapshotVm(vm), reference)).toEqual([]);
  });
});

describe('checkAbInvariant', () => {
  it('holds for the ab workload at any step, and catches a damaged page', async () => {
    const spec = parseVmSpec({ memory: '1MiB', workload: 'ab:rate=0' });
    const vm = await ToyVm.boot(spec);
    vms.push(vm);
    await vm.runSteps(256 * 3 + 100); // 3 passes + 100 pages
    const check = checkAbInvariant(vm.memory);
    expect(check).toEqual({ ok: true, first: 4, edge: 100 });
    vm.memory.page(200)[0] = 9;
    expect(checkAbInvariant(vm.memory).ok).toBe(false);
  });
});
