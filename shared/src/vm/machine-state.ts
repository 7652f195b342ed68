/**
 * A ToyVm's machine state besides memory — the register file (CPU) and the devices (timer,
 * console, NIC) — as a migration moves it: this module owns exporting it, importing it into a
 * VM of the same spec, and the state digest both ends compare.
 *
 * Only while the vCPU is parked (ToyVm checks): then nothing is in flight and the register file
 * plus device state plus guest memory is the complete machine.
 *
 * Round trip: importing what another VM exported and exporting again gives back exactly what
 * was exported (bytes for the CPU, the same fields and values for the devices), so
 * stateDigest() of the importer equals the exporter's. The digest is sha256 (hex) over
 *
 *   "livemig/vm-state/v1\n" ‖ u32le(CPU state length) ‖ CPU state bytes ‖ canonicalJson(device state)
 *
 * with object keys sorted at every level (section-digest.ts), so equal device states hash
 * equally however they were built or transported (msgpack keeps key order, JSON may not).
 */
import { createHash } from 'node:crypto';
import { MigrationError } from '../errors.ts';
import type { DeviceBus, DeviceState } from './devices.ts';
import type { BlkDevice } from './disk/blk-device.ts';
import type { NicDevice } from './nic/nic-device.ts';
import type { RegisterFile } from './registers.ts';
import { canonicalJson } from './section-digest.ts';
import type { Vcpu } from './vcpu.ts';

const DIGEST_DOMAIN = 'livemig/vm-state/v1\n';

/** What the CPU and device state of one VM live in, and what identifies the VM. */
export interface MachineStateParts {
  registers: RegisterFile;
  devices: DeviceBus;
  nic: NicDevice | null;
  /** The disk's device, or null. */
  disk: BlkDevice | null;
  /** Told the step count after a CPU import. */
  vcpu: Vcpu;
  /** The workload's numeric id and the spec hash: a CPU state of another VM is refused. */
  workloadId: number;
  specHash: number;
}

/** Export, import and digest of a VM's CPU and device state. The caller checks the VM is paused. */
export class MachineState {
  readonly #p: MachineStateParts;

  constructor(parts: MachineStateParts) {
    this.#p = parts;
  }

  /** True once the registers hold a machine (boot, or a successful CPU import). */
  get cpuLoaded(): boolean {
    return this.#p.registers.loaded;
  }

  /** The register file as bytes (CPU_STATE_BYTES). */
  exportCpu(): Uint8Array {
    return this.#p.registers.export();
  }

  /** Loads CPU state exported by a VM with the same workload and memory size; ERR_STATE_MISMATCH if it does not fit. */
  importCpu(bytes: Uint8Array): void {
    const { registers, vcpu, workloadId, specHash } = this.#p;
    registers.import(bytes, { workloadId, specHash });
    vcpu.publishSteps(registers.steps);
  }

  /** Device state as plain data (msgpack-able); `nic` is null for a VM without one, `disk` absent without one. */
  exportDevices(): DeviceState {
    const { devices, nic, disk } = this.#p;
    return { ...devices.exportState(), nic: nic?.exportState() ?? null, ...(disk ? { disk: disk.exportState() } : {}) };
  }

  /** Loads device state from exportDevices(); ERR_STATE_MISMATCH if malformed or for another NIC. */
  importDevices(state: unknown): void {
    const { devices, nic, disk } = this.#p;
    const nicState = (state as { nic?: unknown } | null)?.nic ?? null;
    if ((nicState === null) !== (nic === null)) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        nic ? 'device state has no NIC but this VM has one' : 'device state has a NIC but this VM has none',
      );
    }
    const diskState = (state as { disk?: unknown } | null)?.disk ?? null;
    if ((diskState === null) !== (disk === null)) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        disk ? 'device state has no disk but this VM has one' : 'device state has a disk but this VM has none',
      );
    }
    disk?.checkState(diskState); // before anything changes: a bad disk state loads nothing
    devices.importState(state);
    nic?.importState(nicState);
    disk?.importState(diskState);
  }

  /** The console output still in the device's ring. */
  get consoleTail(): string {
    return this.#p.devices.consoleTail;
  }

  /** stateDigest() of this VM's current CPU and device state. */
  digest(): string {
    return stateDigest(this.exportCpu(), this.exportDevices());
  }
}

/** sha256 (hex) of a CPU state and a device state, canonically encoded (see the header). */
export function stateDigest(cpu: Uint8Array, devices: DeviceState): string {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(cpu.length);
  return createHash('sha256')
    .update(DIGEST_DOMAIN)
    .update(length)
    .update(cpu)
    .update(canonicalJson(devices))
    .digest('hex');
}
