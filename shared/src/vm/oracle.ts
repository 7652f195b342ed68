/**
 * The determinism oracle: how tests (and later the migration tests) prove nothing was lost.
 * - Same spec + seed, same step count ⇒ same memory digest, CPU state and device state, and with
 *   a disk the same disk digest (disk/digest.ts): every VM, the reference included, has its own
 *   image, and a paused VM has no disk request in flight (ToyVm.pause() drains the device).
 * - A VM whose memory, CPU and device state were copied into a fresh VM mid-run, then run on,
 *   equals a never-copied reference at the same step.
 * - For the `ab` workload from a zero boot, QEMU's A-B invariant: byte 0 of every page is the
 *   same except for one edge where the earlier pages are exactly one ahead.
 */
import { MigrationError } from '../errors.ts';
import type { DeviceState } from './devices.ts';
import { PAGE_SIZE, type GuestMemory } from './guest-memory.ts';
import { ToyVm, type ToyVmOptions } from './toy-vm.ts';
import type { VmSpec } from './vm-spec.ts';

/** Everything that defines a paused VM's state, in comparable form. */
export interface VmSnapshot {
  steps: number;
  /** Memory digest (xxhash64 hex). */
  digest: string;
  /** Register file, hex. */
  cpuState: string;
  devices: DeviceState;
  /** Disk digest (xxhash64 hex), or null for a VM without a disk. */
  disk: string | null;
}

/** Snapshot of a paused VM. */
export async function snapshotVm(vm: ToyVm): Promise<VmSnapshot> {
  const cpuState = Buffer.from(vm.exportCpuState()).toString('hex');
  const devices = vm.exportDeviceState();
  return { steps: vm.steps, digest: await vm.digest(), cpuState, devices, disk: await vm.diskDigest() };
}

/** Human-readable differences between two snapshots; empty when they are equal. */
export function diffSnapshots(a: VmSnapshot, b: VmSnapshot): string[] {
  const diffs: string[] = [];
  if (a.steps !== b.steps) diffs.push(`steps ${a.steps} ≠ ${b.steps}`);
  if (a.digest !== b.digest) diffs.push(`memory digest ${a.digest} ≠ ${b.digest}`);
  if (a.disk !== b.disk) diffs.push(`disk digest ${a.disk} ≠ ${b.disk}`);
  if (a.cpuState !== b.cpuState) diffs.push(`CPU state ${a.cpuState} ≠ ${b.cpuState}`);
  const da = JSON.stringify(a.devices);
  const db = JSON.stringify(b.devices);
  if (da !== db) diffs.push(`device state ${da} ≠ ${db}`);
  return diffs;
}

/** Boots a VM, runs it `steps` steps at full speed, snapshots it and destroys it. */
export async function runReference(spec: VmSpec, steps: number, options: ToyVmOptions = {}): Promise<VmSnapshot> {
  const vm = await ToyVm.boot(spec, options);
  try {
    await vm.runSteps(steps, { fullSpeed: true });
    return await snapshotVm(vm);
  } finally {
    await vm.destroy();
  }
}

/**
 * Copies a paused VM into a fresh one the way a migration does: only the pages that may be
 * non-zero, then CPU and device state. The copy is paused, ready to start(). A VM with a disk is
 * refused (ERR_UNSUPPORTED): copying a disk is issue 15's next step.
 */
export async function cloneVm(source: ToyVm, options: ToyVmOptions = {}): Promise<ToyVm> {
  if (source.spec.disk !== null) {
    throw new MigrationError(
      'ERR_UNSUPPORTED',
      'cannot copy a VM with a disk; disk migration is not built yet (issue 15)',
    );
  }
  const copy = await ToyVm.createIncoming(source.spec, { ...options, postcopy: false });
  try {
    source.possiblyNonZero().forEach((n) => copy.memory.writePage(n, source.memory.page(n)));
    copy.importCpuState(source.exportCpuState());
    copy.importDeviceState(source.exportDeviceState());
    return copy;
  } catch (error) {
    await copy.destroy();
    throw error;
  }
}

/** Result of checkAbInvariant. */
export interface AbCheck {
  ok: boolean;
  /** Byte 0 of page 0. */
  first: number;
  /** The page where the value drops by one (the A-B cursor), or -1 if all pages are equal. */
  edge: number;
  /** What is wrong, when not ok. */
  problem?: string;
}

/** QEMU's check_guests_ram for the `ab` workload from a zero boot: all equal but one edge, exactly one behind. */
export function checkAbInvariant(memory: GuestMemory): AbCheck {
  let last = -1;
  let edge = -1;
  let first = 0;
  for (let r = 0, page = 0; r < memory.regions.length; r++) {
    const region = memory.region(r);
    for (let offset = 0; offset < region.length; offset += PAGE_SIZE, page++) {
      const b = region[offset]!;
      if (page === 0) {
        first = b;
      } else if (b !== last) {
        if (((b + 1) & 255) === last && edge < 0) {
          edge = page;
        } else {
          return { ok: false, first, edge, problem: `page ${page} byte 0 is ${b} after ${last} (edge ${edge})` };
        }
      }
      last = b;
    }
  }
  return { ok: true, first, edge };
}
