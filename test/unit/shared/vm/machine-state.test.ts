/**
 * CPU and device state as a migration moves it (machine-state.ts, through ToyVm): what a VM
 * created with createIncoming() imports it exports again unchanged, so its stateDigest() equals
 * the exporter's — for a VM without a NIC and for one with a NIC that has moved datagrams — and
 * a single changed register byte or device field changes the digest.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKvRequest, KvOp } from '../../../../shared/src/kv/index.ts';
import type { DeviceState } from '../../../../shared/src/vm/devices.ts';
import { stateDigest } from '../../../../shared/src/vm/machine-state.ts';
import { ipv4ToU32 } from '../../../../shared/src/vm/nic/index.ts';
import { R_ACC } from '../../../../shared/src/vm/registers.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec, type VmSpecInput } from '../../../../shared/src/vm/vm-spec.ts';
import { waitUntil } from '../../../helpers/wait.ts';

const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

async function boot(input: VmSpecInput): Promise<ToyVm> {
  const vm = await ToyVm.boot(parseVmSpec(input));
  vms.push(vm);
  return vm;
}

/** A paused VM's memory, CPU and device state copied into a fresh incoming VM, the way a migration does. */
async function migrateInto(source: ToyVm): Promise<ToyVm> {
  const target = await ToyVm.createIncoming(source.spec, { postcopy: false });
  vms.push(target);
  source.possiblyNonZero().forEach((n) => target.memory.writePage(n, source.memory.page(n)));
  target.importCpuState(source.exportCpuState());
  // Through JSON, as a stand-in for the wire: the state must not depend on object identity.
  target.importDeviceState(JSON.parse(JSON.stringify(source.exportDeviceState())));
  return target;
}

/** The same value with every object's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value).reverse();
  return Object.fromEntries(entries.map(([k, v]) => [k, reversedKeys(v)]));
}

describe('ToyVm.stateDigest', () => {
  it('a VM without a NIC: the importer exports what it imported and has the exporter’s digest', async () => {
    const source = await boot({ memory: '4MiB', init: 'random', workload: 'uniform:rate=0', seed: 3 });
    await source.runSteps(70_000, { fullSpeed: true }); // > 16 timer ticks: the console has printed
    const devices = source.exportDeviceState();
    expect(devices.timer.ticks).toBeGreaterThan(16);
    expect(devices.console.tail).toMatch(/^tick 16 acc [0-9a-f]{8}\n/);
    expect(devices.nic).toBeNull();

    const target = await migrateInto(source);
    expect(Buffer.from(target.exportCpuState())).toEqual(Buffer.from(source.exportCpuState()));
    expect(target.exportDeviceState()).toEqual(devices);
    expect(target.stateDigest()).toBe(source.stateDigest());
    expect(source.stateDigest()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a VM with a NIC that moved datagrams: same round trip, same digest', async () => {
    const source = await boot({ memory: '4MiB', workload: 'kv:keys=1024', nic: '192.0.2.77:7700' });
    const nic = source.nic!;
    source.start();
    const from = ipv4ToU32('192.0.2.1');
    for (let id = 1; id <= 3; id++) {
      expect(nic.receive(from, 5000, encodeKvRequest({ op: KvOp.Put, id, key: id, value: id * 10 }))).toBe(true);
    }
    let sent = 0;
    await waitUntil(
      () => {
        sent += nic.transmit(() => {});
        return sent === 3;
      },
      { what: 'three replies from the guest' },
    );
    nic.receive(from, 5000, new Uint8Array(4096)); // too large for a slot: counted as dropped
    await source.pause();
    const devices = source.exportDeviceState();
    expect(devices.nic).toMatchObject({ rxPackets: 3, txPackets: 3, rxDropped: 1, rxUsed: 3, txUsed: 3 });

    const target = await migrateInto(source);
    expect(target.exportDeviceState()).toEqual(devices);
    expect(target.stateDigest()).toBe(source.stateDigest());
  });

  it('one changed register byte or device field changes it; key order does not', async () => {
    const source = await boot({ memory: '2MiB', workload: 'sweep:rate=0' });
    await source.runSteps(10_000);
    const cpu = source.exportCpuState();
    const devices = source.exportDeviceState();
    const digest = source.stateDigest();
    expect(stateDigest(cpu, devices)).toBe(digest);
    expect(stateDigest(cpu, reversedKeys(devices) as DeviceState)).toBe(digest);

    const flipped = cpu.slice();
    flipped[R_ACC * 4 + 1]! ^= 0x01;
    expect(stateDigest(flipped, devices)).not.toBe(digest);
    const target = await ToyVm.createIncoming(source.spec, { postcopy: false });
    vms.push(target);
    target.importCpuState(flipped);
    target.importDeviceState(devices);
    expect(target.stateDigest()).not.toBe(digest);

    const latch = { ...devices, timer: { ...devices.timer, latch: (devices.timer.latch + 1) >>> 0 } };
    expect(stateDigest(cpu, latch)).not.toBe(digest);
    target.importCpuState(cpu);
    expect(target.stateDigest()).toBe(digest);
    target.importDeviceState(latch);
    expect(target.stateDigest()).not.toBe(digest);
  });

  it('is refused unless the VM is paused', async () => {
    const vm = await boot({ memory: '1MiB', workload: 'idle:hz=0' });
    vm.start();
    expect(() => vm.stateDigest()).toThrow(expect.objectContaining({ code: 'ERR_VM_STATE' }));
    await vm.destroy();
    expect(() => vm.stateDigest()).toThrow(expect.objectContaining({ code: 'ERR_VM_STATE' }));
  });
});
