/**
 * The VM spec: everything that defines a toy VM before it runs — memory size, initial memory,
 * workload and seed — in canonical form. Two VMs with equal specs, run to the same step, are
 * identical (the determinism oracle); the migration handshake sends the spec so the
 * destination can build the same machine.
 */
import { MigrationError } from '../errors.ts';
import { parseSize } from '../units.ts';
import { checkDiskBytes } from './disk/image.ts';
import { checkMemoryBytes } from './guest-memory.ts';
import { formatInitSpec, parseInitSpec, type InitSpec } from './init.ts';
import { parseWorkloadSpec, type WorkloadSpec } from './workload-spec.ts';
import { WORKLOADS, type WorkloadParams } from './workloads/index.ts';
import { DISK_BYTES_PARAM } from './workloads/types.ts';

/** A validated VM spec; the strings are canonical. */
export interface VmSpec {
  /** Guest RAM in bytes: a multiple of 4 KiB in [1 MiB, 16 GiB]. */
  memoryBytes: number;
  /**
   * "zero" | "random" | "mixed:<fraction of zero pages>" | "mixed:zero=…,dup=…,text=…,code=…,random=…"
   * (`realistic` is written out as the latter).
   */
  init: string;
  /** Canonical workload spec, e.g. "hotset:wss=64MiB,rate=20000". */
  workload: string;
  /** Seed of the initial memory and the workload: an integer in [0, 2^32). */
  seed: number;
  /**
   * The virtual NIC's address, "a.b.c.d:port" (IPv4), or null for a VM without a NIC. The
   * address moves with the VM; only workloads that drive a NIC (kv) may have one, and they must.
   */
  nic: string | null;
  /**
   * The virtual disk's size in bytes (a multiple of 4 KiB in [1 MiB, 1 TiB]), or null for a VM
   * without a disk. Only workloads that drive the disk may have one: disk must, kv may (its
   * writes then go through a write-ahead log on it); the others must not.
   */
  disk: number | null;
}

/** What a user or a peer gives to describe a VM. */
export interface VmSpecInput {
  /** A size ("64MiB") or bytes. */
  memory: string | number;
  /** @default "zero" */
  init?: string;
  /** @default "idle" */
  workload?: string;
  /** @default 1 */
  seed?: number;
  /** "a.b.c.d:port"; @default null (no NIC) */
  nic?: string | null;
  /** A size ("64MiB") or bytes; @default null (no disk) */
  disk?: string | number | null;
}

/** Default seed when none is given. */
export const DEFAULT_SEED = 1;

/** Validates and canonicalises a VM spec. Throws ERR_INVALID_SIZE / _INIT / _WORKLOAD / _ARGUMENT. */
export function parseVmSpec(input: VmSpecInput): VmSpec {
  const memoryBytes = parseSize(input.memory);
  checkMemoryBytes(memoryBytes);
  const init = formatInitSpec(parseInitSpec(input.init ?? 'zero'));
  const workload = parseWorkloadSpec(input.workload ?? 'idle', memoryBytes).canonical;
  const seed = input.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `seed must be an integer between 0 and 4294967295, got ${seed}`);
  }
  const definition = parseWorkloadSpec(workload, memoryBytes).definition;
  const nic = input.nic === undefined || input.nic === null || input.nic === '' ? null : parseNicAddress(input.nic);
  if (definition.drivesNic && nic === null) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `the ${definition.name} workload serves on the VM's NIC: give it an address (--nic IP:PORT, e.g. 127.0.0.1:7700)`,
    );
  }
  if (!definition.drivesNic && nic !== null) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `--nic needs a workload that drives the NIC (kv); ${definition.name} would scribble over its rings`,
    );
  }
  const disk = input.disk === undefined || input.disk === null || input.disk === '' ? null : parseDiskSize(input.disk);
  if (definition.drivesDisk === true && disk === null) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `the ${definition.name} workload drives the VM's disk: give it one (--disk SIZE, e.g. 64MiB)`,
    );
  }
  if (!definition.drivesDisk && disk !== null) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `--disk needs a workload that drives the disk (${diskWorkloads()}); ${definition.name} would scribble over its ring`,
    );
  }
  const params = parseWorkloadSpec(workload, memoryBytes).params;
  const wss = params.wss;
  if (disk !== null && wss !== undefined && wss > disk) {
    throw new MigrationError(
      'ERR_INVALID_WORKLOAD',
      `${definition.name}: wss (${wss} bytes) is larger than the VM's disk (${disk} bytes)`,
    );
  }
  // The workload's layout may change with a disk (kv makes room for the ring and its log buffer).
  if (disk !== null) definition.validate?.(withDisk(params, disk), memoryBytes);
  return { memoryBytes, init, workload, seed, nic, disk };
}

/** The workloads that drive a disk, for error messages: "kv may have one, disk needs one". */
function diskWorkloads(): string {
  return WORKLOADS.filter((w) => w.drivesDisk)
    .map((w) => `${w.name} ${w.drivesDisk === 'optional' ? 'may have one' : 'needs one'}`)
    .join(', ');
}

/** A workload's parameters as the VM's boot sees them: with the disk's size for a VM that has one. */
function withDisk(params: WorkloadParams, disk: number | null): WorkloadParams {
  return disk === null ? params : { ...params, [DISK_BYTES_PARAM]: disk };
}

/** A disk size in bytes ("64MiB", "4GiB" or a number): a multiple of 4 KiB in [1 MiB, 1 TiB]; throws ERR_INVALID_SIZE. */
export function parseDiskSize(size: string | number): number {
  const bytes = parseSize(size);
  checkDiskBytes(bytes);
  return bytes;
}

/** Canonical "a.b.c.d:port" of a NIC address; throws ERR_INVALID_ARGUMENT. */
export function parseNicAddress(text: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(text.trim());
  const octets = match ? match.slice(1, 5).map(Number) : [];
  const port = match ? Number(match[5]) : 0;
  if (!match || octets.some((o) => o > 255) || port < 1 || port > 65535) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `bad NIC address "${text}": expected IPv4:PORT with a port in 1–65535, e.g. 127.0.0.1:7700`,
    );
  }
  return `${octets.join('.')}:${port}`;
}

/**
 * The parsed parts of a (canonical) spec, as a VM boots them: for a VM with a disk the
 * workload's parameters also carry its size (DISK_BYTES_PARAM, never part of a spec string),
 * which is how reservedBytes() and initRegisters() learn about the disk.
 */
export function resolveVmSpec(spec: VmSpec): { init: InitSpec; workload: WorkloadSpec } {
  const workload = parseWorkloadSpec(spec.workload, spec.memoryBytes);
  return {
    init: parseInitSpec(spec.init),
    workload: spec.disk === null ? workload : { ...workload, params: withDisk(workload.params, spec.disk) },
  };
}
