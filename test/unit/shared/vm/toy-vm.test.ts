import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runReference } from '../../../../shared/src/vm/oracle.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec, type VmSpecInput } from '../../../../shared/src/vm/vm-spec.ts';

const code = (c: string) => expect.objectContaining({ code: c });
const vms: ToyVm[] = [];
async function boot(input: VmSpecInput, options = {}): Promise<ToyVm> {
  const vm = await ToyVm.boot(parseVmSpec(input), options);
  vms.push(vm);
  return vm;
}
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

/** Waits (by polling the live counter, which is the point of it) until the vCPU has run `steps`. */
async function untilSteps(vm: ToyVm, steps: number): Promise<void> {
  while (vm.steps < steps) await sleep(2);
}

describe('ToyVm lifecycle', () => {
  it('boots paused, runs exactly n steps, and counts them live', async () => {
    const vm = await boot({ memory: '4MiB', workload: 'uniform:rate=0' });
    expect(vm.status).toBe('paused');
    expect(vm.steps).toBe(0);
    await vm.runSteps(12_345);
    expect(vm.status).toBe('paused');
    expect(vm.steps).toBe(12_345);
    await vm.runSteps(0);
    expect(vm.steps).toBe(12_345);
  });

  it('pause() quiesces: afterwards neither memory nor the step counter moves for 100 ms', async () => {
    const vm = await boot({ memory: '4MiB', init: 'random', workload: 'uniform:rate=0' });
    vm.start();
    await untilSteps(vm, 200_000);
    await vm.pause();
    const steps = vm.steps;
    const digest = await vm.digest();
    vm.harvestDirty();
    // The assertion: nothing happens during this time — at least 100 ms, and as long as a running
    // VM of the same spec takes to do what this one did before the pause, so that on a loaded
    // machine that left vCPU threads unscheduled the window is still one this VM would have moved in.
    await Promise.all([sleep(100), runReference(vm.spec, 200_000)]);
    expect(vm.steps).toBe(steps);
    expect(await vm.digest()).toBe(digest);
    expect(vm.harvestDirty().length).toBe(0);
    expect(vm.status).toBe('paused');
  });

  it('refuses operations that do not fit its state', async () => {
    const vm = await boot({ memory: '1MiB', workload: 'idle:hz=0' });
    expect(() => vm.exportCpuState()).not.toThrow();
    vm.start();
    expect(() => vm.resume()).toThrow(code('ERR_VM_STATE'));
    expect(() => vm.exportCpuState()).toThrow(code('ERR_VM_STATE'));
    expect(() => vm.importDeviceState(vm.exportDeviceState())).toThrow(code('ERR_VM_STATE'));
    await expect(vm.runSteps(1)).rejects.toThrow(code('ERR_VM_STATE'));
    expect(() => vm.setThrottle(0)).toThrow(code('ERR_INVALID_ARGUMENT'));
    expect(() => vm.setThrottle(1.5)).toThrow(code('ERR_INVALID_ARGUMENT'));
    await vm.pause();
    await vm.pause(); // idempotent
    await expect(vm.runSteps(-1)).rejects.toThrow(code('ERR_INVALID_ARGUMENT'));
    await vm.destroy();
    expect(vm.status).toBe('destroyed');
    expect(() => vm.harvestDirty()).toThrow(code('ERR_VM_STATE'));
    expect(() => vm.start()).toThrow(code('ERR_VM_STATE'));
  });

  it('destroy() during a bounded run rejects the run instead of leaving it pending', async () => {
    const vm = await boot({ memory: '1MiB', workload: 'uniform:rate=1000' });
    const run = expect(vm.runSteps(1_000_000)).rejects.toThrow(code('ERR_VM_STATE'));
    await vm.destroy();
    await run;
  });

  it('destroy() lets go of what it owns: memory regions, NIC views, status listeners', async () => {
    const vm = await boot({ memory: '4MiB', workload: 'kv:keys=1024', nic: '192.0.2.8:7700' });
    vm.start();
    const seen: string[] = [];
    vm.onStatus((status) => seen.push(status));
    const tx = vm.nic!.waitForTx(); // nothing to send: pending until the device closes
    await vm.destroy();
    await tx;
    expect(seen).toEqual(['paused', 'destroyed']);
    expect(vm.status).toBe('destroyed');
    expect(vm.memory.released).toBe(true);
    expect(vm.memory.regions).toEqual([]);
    expect(() => vm.memory.page(0)).toThrow(code('ERR_VM_STATE'));
    expect(vm.nic!.closed).toBe(true);
    await vm.destroy(); // idempotent
    expect(seen).toEqual(['paused', 'destroyed']);
    expect(vm.stats()).toMatchObject({ status: 'destroyed', steps: vm.steps });
  });

  it('an incoming VM cannot start before CPU state is imported, and refuses state from another VM', async () => {
    const source = await boot({ memory: '2MiB', workload: 'sweep:rate=0' });
    const other = await boot({ memory: '2MiB', workload: 'uniform:rate=0' });
    const incoming = await ToyVm.createIncoming(source.spec, { postcopy: false });
    vms.push(incoming);
    expect(() => incoming.start()).toThrow(code('ERR_VM_STATE'));
    expect(() => incoming.importCpuState(other.exportCpuState())).toThrow(code('ERR_STATE_MISMATCH'));
    expect(() => incoming.importCpuState(new Uint8Array(5))).toThrow(code('ERR_STATE_MISMATCH'));
    await source.runSteps(1000);
    incoming.importCpuState(source.exportCpuState());
    expect(incoming.steps).toBe(1000);
    expect(() => incoming.start()).not.toThrow();
  });

  it('an incoming VM is built without waiting for its vCPU worker; what it is told before the worker is up is not lost', async () => {
    const source = await boot({ memory: '2MiB', workload: 'sweep:rate=0' });
    await source.runSteps(500);
    const incoming = await ToyVm.createIncoming(source.spec, { postcopy: false });
    vms.push(incoming);
    let up = false;
    const ready = incoming.vcpuReady().then(() => (up = true));
    // Straight away (the worker is still loading its modules): import the state and run.
    expect(up).toBe(false);
    incoming.importCpuState(source.exportCpuState());
    incoming.start();
    await ready;
    // It runs once its worker is up: the step counter moves past where the import left it.
    await vi.waitFor(() => expect(incoming.steps).toBeGreaterThan(500), { timeout: 10_000, interval: 5 });
    await incoming.pause();
    // Destroyed before its worker is up: the worker exits when it comes up, nothing hangs.
    const early = await ToyVm.createIncoming(source.spec, { postcopy: false });
    await early.destroy();
    await early.vcpuReady().catch(() => undefined); // settles: came up and exited, or never did
    expect(early.status).toBe('destroyed');
  });
});

describe('ToyVm dirty tracking', () => {
  it('possiblyNonZero() is exact after a harvest: init non-zero ∪ everything written', async () => {
    const vm = await boot({ memory: '4MiB', init: 'mixed:0.9', workload: 'sweep:rate=0', seed: 4 });
    const initial = vm.possiblyNonZero().clone();
    expect(initial.count).toBeGreaterThan(0);
    expect(initial.count).toBeLessThan(vm.memory.pageCount / 2);
    await vm.runSteps(300); // sweep writes pages 0..299
    const dirty = vm.harvestDirty();
    expect([...dirty]).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const map = vm.possiblyNonZero();
    for (let n = 0; n < vm.memory.pageCount; n++) {
      expect(map.has(n)).toBe(n < 300 || initial.has(n));
      if (!map.has(n)) expect(vm.memory.isZeroPage(n)).toBe(true);
    }
  });

  it('possiblyNonZero() includes pages dirtied but not yet harvested', async () => {
    const vm = await boot({ memory: '4MiB', workload: 'sweep:rate=0' });
    await vm.runSteps(10);
    expect(vm.possiblyNonZero().count).toBe(10);
    expect(vm.harvestDirty().length).toBe(10); // peeking did not clear them
  });
});

/**
 * The write rate (page writes per ms of running, ×1000) over resume → pause windows of 500 ms,
 * until one reaches `low` or 15 s have passed. Each window starts on a fresh schedule (resuming
 * rebases the pacing). A loaded machine that leaves the vCPU thread unscheduled makes a window
 * slower, never faster — so the rate must be reached in some window, and passed in none.
 */
async function windowRates(vm: ToyVm, low: number): Promise<number[]> {
  const rates: number[] = [];
  const deadline = performance.now() + 15_000;
  do {
    const before = vm.stats();
    vm.resume();
    await sleep(500);
    await vm.pause();
    const after = vm.stats();
    rates.push(((after.pageWrites - before.pageWrites) * 1000) / (after.runningMs - before.runningMs));
  } while (rates.at(-1)! < low && performance.now() < deadline);
  return rates;
}

describe('ToyVm pacing', () => {
  it('runs a paced workload at its rate, and the throttle scales it', async () => {
    const vm = await boot({ memory: '4MiB', workload: 'uniform:rate=20000' });
    const full = await windowRates(vm, 20000 * 0.85);
    expect(Math.max(...full), `rates per window: ${full.join(', ')}`).toBeGreaterThan(20000 * 0.85);
    expect(Math.max(...full), `rates per window: ${full.join(', ')}`).toBeLessThan(20000 * 1.1);
    vm.setThrottle(0.25);
    expect(vm.throttle).toBe(0.25);
    const throttled = await windowRates(vm, 5000 * 0.8);
    expect(Math.max(...throttled), `rates per window: ${throttled.join(', ')}`).toBeGreaterThan(5000 * 0.8);
    expect(Math.max(...throttled), `rates per window: ${throttled.join(', ')}`).toBeLessThan(5000 * 1.2);
  });
});
