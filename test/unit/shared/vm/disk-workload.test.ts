import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlkDevice } from '../../../../shared/src/vm/disk/blk-device.ts';
import { diffSnapshots, runReference, snapshotVm } from '../../../../shared/src/vm/oracle.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';
import { DISK_BUFFER_PAGE, DISK_RING_PAGE, blockWord } from '../../../../shared/src/vm/workloads/disk.ts';

const options = { regionBytes: 1024 * 1024 };
const STEPS = 2_000;
const spec = parseVmSpec({
  memory: '2MiB',
  init: 'random',
  workload: 'disk:wss=256KiB,rate=0,rw=40',
  disk: '4MiB',
  seed: 5,
});

const code = (c: string) => expect.objectContaining({ code: c });
const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

describe('disk workload', () => {
  it('two runs to the same step: same memory, CPU, device and disk digests, zero mismatches', async () => {
    const [a, b, other] = await Promise.all([
      runReference(spec, STEPS, options),
      runReference(spec, STEPS),
      runReference({ ...spec, seed: 6 }, STEPS, options),
    ]);
    expect(a.steps).toBe(STEPS);
    expect(a.disk).toMatch(/^[0-9a-f]{16}$/);
    expect(diffSnapshots(a, b)).toEqual([]);
    expect(other.disk).not.toBe(a.disk);
    expect(diffSnapshots(a, other)).not.toEqual([]);
  });

  it('is the same whether run in one go or paused and resumed (I/O timing does not count), and reads back what it wrote', async () => {
    const vm = await ToyVm.boot(spec, options);
    vms.push(vm);
    for (let k = 0; k < 4; k++) await vm.runSteps(STEPS / 4, { fullSpeed: true });
    vm.start();
    await vm.pause(); // a pause at any step drains the device
    const steps = vm.steps;
    const live = await snapshotVm(vm);
    expect(vm.diskMismatches).toBe(0);
    expect(vm.disk?.allocatedBytes).toBeGreaterThan(0);
    expect(diffSnapshots(live, await runReference(spec, steps, options))).toEqual([]);
  });

  it('counts a block that reads back wrong', async () => {
    const vm = await ToyVm.boot(
      parseVmSpec({ ...spec, memory: spec.memoryBytes, workload: 'disk:wss=4KiB,rate=0,rw=50' }),
      options,
    );
    vms.push(vm);
    await vm.runSteps(40, { fullSpeed: true });
    expect(vm.diskMismatches).toBe(0);
    // Corrupt block 0 behind the guest's back: its next read-back must count it.
    const image = vm.disk!.path;
    const fh = await fs.open(image, 'r+');
    await fh.write(new Uint8Array(8).fill(0xff), 0, 8, 4 * 100);
    await fh.close();
    await vm.runSteps(200, { fullSpeed: true });
    expect(vm.diskMismatches).toBeGreaterThan(0);
  });

  it("exports the disk device's state (ring indices, counters) and imports it only where memory and disk agree", async () => {
    const vm = await ToyVm.boot(spec, options);
    vms.push(vm);
    await vm.runSteps(301, { fullSpeed: true }); // odd: the last step placed a request; pause() drained it
    const state = vm.exportDeviceState();
    expect(state.disk).toMatchObject({ sizeBytes: 4 * 1024 * 1024, ringPage: DISK_RING_PAGE, avail: 151, used: 151 });
    expect(state.disk!.reads + state.disk!.writes).toBe(151);

    const copy = await ToyVm.createIncoming(spec, { ...options, postcopy: false });
    vms.push(copy);
    // Memory not copied yet: its ring indices are 0, the state's are not.
    expect(() => copy.importDeviceState(state)).toThrow(code('ERR_STATE_MISMATCH'));
    vm.possiblyNonZero().forEach((n) => copy.memory.writePage(n, vm.memory.page(n)));
    expect(() => copy.importDeviceState({ ...state, disk: { ...state.disk!, sizeBytes: 8 * 1024 * 1024 } })).toThrow(
      code('ERR_STATE_MISMATCH'),
    );
    expect(() => copy.importDeviceState({ ...state, disk: { ...state.disk!, writes: -1 } })).toThrow(
      code('ERR_STATE_MISMATCH'),
    );
    const { disk: _disk, ...withoutDisk } = state;
    expect(() => copy.importDeviceState(withoutDisk)).toThrow(code('ERR_STATE_MISMATCH'));
    copy.importDeviceState(state);
    copy.importCpuState(vm.exportCpuState());
    expect(copy.exportDeviceState()).toEqual(state);
    expect(copy.stateDigest()).toBe(vm.stateDigest());
  });

  it('writes self-describing blocks and removes its image when destroyed', async () => {
    const vm = await ToyVm.boot(spec, options);
    await vm.runSteps(400, { fullSpeed: true });
    const path = vm.disk!.path;
    await expect(fs.stat(path)).resolves.toBeDefined();
    const page = new Int32Array(vm.memory.page(DISK_BUFFER_PAGE).slice().buffer);
    if (page[1] !== 0) expect(page[2]).toBe(blockWord(page[0]!, page[1]!, 2));
    await vm.destroy();
    await expect(fs.stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.stat(`${path}.alloc`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a device that fails (a bug, not an I/O error) halts its VM as crashed, and nothing else', async () => {
    const serve = vi.spyOn(BlkDevice.prototype, 'serve').mockRejectedValue(new TypeError('a bug in the device'));
    try {
      const vm = await ToyVm.boot(spec, options);
      vms.push(vm);
      const crashed = new Promise((resolve) => vm.onCrash(resolve));
      vm.resume();
      await expect(crashed).resolves.toMatchObject({ code: 'ERR_DEVICE_FAILED' });
      expect(vm.status).toBe('crashed');
      expect(vm.failure?.message).toMatch(/the disk device failed: TypeError: a bug in the device/);
    } finally {
      serve.mockRestore();
    }
  });
});
