/**
 * What a workload is: a deterministic program over (registers, guest memory). The registry
 * (workloads/index.ts) lists them; the vCPU worker runs one.
 *
 * Rules every workload follows, because migration and the determinism oracle depend on them:
 * - All state lives in the register file and guest memory: run() loads registers into locals,
 *   runs, and stores them back before returning. No other state survives a call.
 * - A step's effect depends only on the registers and memory, never on time or batch sizes.
 * - Every store is followed by marking its page in the dirty log (data first, then the mark).
 * - nextPages() names every page the next step will read or write, without changing anything:
 *   that is how the vCPU checks post-copy presence before a step, so a step never starts on an
 *   absent page and a vCPU blocked on a fault is always at a clean step boundary.
 * - A workload driven by input (kv: requests in the NIC's RX ring; kv and disk: completions in
 *   the disk's ring) says through pending() how many steps it can run now — every one of them
 *   runnable without waiting for anything; at 0 the vCPU halts (like HLT) until a device kicks it.
 */

/**
 * Most pages one step may touch (nextPages' out array has this many slots). The most is kv with
 * a disk completing a logged write: page 0, its RX slot, the disk ring's index page and slot,
 * the table page and its TX slot.
 */
export const MAX_PAGES_PER_STEP = 6;

/**
 * How a workload uses the virtual disk (--disk): `true` it is the disk's driver and needs one;
 * `'optional'` it runs with or without one and drives it when there is one (kv: a write-ahead
 * log); absent or `false` it has nothing to do with a disk, and a VM running it may have none.
 */
export type DiskUse = boolean | 'optional';

/**
 * A parameter no spec ever carries: the VM's disk size in bytes, added to the workload's
 * parameters by resolveVmSpec() (vm-spec.ts) for a VM with a disk, and absent without one. It is
 * how reservedBytes() and initRegisters() learn, at boot, what a virtio-blk driver reads from
 * the device's config space; and how vm-spec.ts's second validate() call checks the layout
 * with the disk. The vCPU worker builds the program from the spec string alone, so a program
 * that needs the disk's size during steps keeps what initRegisters() put in a register (kv:
 * R_KV_WAL_BLOCKS) — which migrates with the CPU state, as a driver's copy of it would.
 * Not a name a spec can use: spec parameters are lower case.
 */
export const DISK_BYTES_PARAM = 'diskBytes';

/** A workload parameter, as listed by `--help` and checked by the spec parser. */
export interface WorkloadParam {
  /** Name in the spec, e.g. "wss". */
  name: string;
  /** "size" accepts 64MiB-style sizes; "count" a non-negative integer. */
  kind: 'size' | 'count';
  /** Default value, possibly depending on the VM's memory size. */
  default: number | ((memoryBytes: number) => number);
  /** Default, in words, for --help (e.g. "min(64MiB, memory/4)"). */
  defaultText: string;
  /** One line for --help. */
  description: string;
}

/** Resolved parameter values by name. */
export type WorkloadParams = Readonly<Record<string, number>>;

/** What a workload program runs against (the worker's views of shared memory). */
export interface WorkloadEnv {
  /** The register file. */
  regs: Uint32Array;
  /** Guest memory, one Int32Array per region. */
  mem32: readonly Int32Array[];
  /** Guest memory, one Uint8Array per region. */
  mem8: readonly Uint8Array[];
  /** Page n is in region n >>> regionPageShift. */
  regionPageShift: number;
  /** The dirty log's words. */
  dirty: Int32Array;
  /** Number of pages. */
  pageCount: number;
  /** Resolved parameters. */
  params: WorkloadParams;
}

/** A workload bound to a VM. */
export interface WorkloadProgram {
  /** Runs exactly n steps (n ≥ 1), all pages present. */
  run(n: number): void;
  /**
   * Writes the pages the next step touches into out (reads first, then writes) and returns how
   * many (0..MAX_PAGES_PER_STEP).
   */
  nextPages(out: Int32Array): number;
  /**
   * Input-driven workloads: how many steps can run now (0 = nothing to do: the vCPU halts until
   * kicked). Absent = always runnable. Reads only pages the device keeps present.
   */
  pending?(): number;
}

/** A registry entry. */
export interface WorkloadDefinition {
  /** Stable numeric id, stored in the register file. Never reuse one. */
  id: number;
  /** Name in specs, e.g. "hotset". */
  name: string;
  /** One line for --help and error messages. */
  summary: string;
  /** Parameters, in canonical order. */
  params: readonly WorkloadParam[];
  /** True if the workload is the guest driver of the virtual NIC (the VM then must have one). */
  drivesNic?: boolean;
  /**
   * The guest driver of the virtual disk: `true` the VM must have a disk (--disk), `'optional'`
   * it may (the workload then drives it), absent it must not (see DiskUse).
   */
  drivesDisk?: DiskUse;
  /**
   * Bytes at the start of guest memory the workload owns (NIC rings, its table) that must start
   * zeroed whatever --init says: the VM clears them at boot. Absent = none. With a disk, params
   * carry DISK_BYTES_PARAM.
   */
  reservedBytes?(params: WorkloadParams): number;
  /** Guest page writes per step (0 or 1). */
  writesPerStep: number;
  /** Steps per second the vCPU paces itself to; 0 = as fast as it can. */
  stepsPerSecond(params: WorkloadParams): number;
  /**
   * Extra checks against the VM size; throws ERR_INVALID_WORKLOAD. Called for the spec's own
   * parameters, and once more by parseVmSpec() with DISK_BYTES_PARAM for a VM with a disk.
   */
  validate?(params: WorkloadParams, memoryBytes: number): void;
  /**
   * Sets this workload's registers at boot (identification and step counter are already set).
   * With a disk, params carry DISK_BYTES_PARAM.
   */
  initRegisters?(regs: Uint32Array, params: WorkloadParams, pageCount: number): void;
  /** Binds the program to a VM (in the vCPU worker). */
  create(env: WorkloadEnv): WorkloadProgram;
}
