/**
 * The vCPU's register file: 32 × u32 in a small SharedArrayBuffer — the whole CPU state.
 * Workloads load the registers they use into locals at the start of a batch and store them
 * back at its end, so at any batch boundary (which is where the vCPU parks) the register file
 * plus guest memory plus device state is the complete machine: export it as bytes, import it
 * into a fresh VM, and that VM continues exactly where this one was.
 *
 * Layout (word index): identification first, so an import into the wrong VM is refused
 * (ERR_STATE_MISMATCH) rather than silently running garbage.
 */
import { MigrationError } from '../errors.ts';

/** Number of 32-bit registers. */
export const REGISTER_COUNT = 32;
/** Size of exported CPU state in bytes. */
export const CPU_STATE_BYTES = REGISTER_COUNT * 4;
/** Register-file magic, "LMVC". */
export const REGISTER_MAGIC = 0x4c4d5643;
/** Register-file layout version. */
export const REGISTER_VERSION = 1;

/** Word: magic. */
export const R_MAGIC = 0;
/** Word: layout version. */
export const R_VERSION = 1;
/** Word: the workload's numeric id (WorkloadDefinition.id). */
export const R_WORKLOAD = 2;
/** Word: hash of memory size + canonical workload spec (refuses imports into a different VM). */
export const R_SPEC_HASH = 3;
/** Word: step counter, low 32 bits (the step counter is the program counter of these toy programs). */
export const R_STEP_LO = 4;
/** Word: step counter, high 32 bits. */
export const R_STEP_HI = 5;
/** Word: the seed-derived key of the workload's per-step hash. */
export const R_KEY = 6;
/** Word: accumulator (values read from memory are folded in here). */
export const R_ACC = 7;
/** Word: cursor (sweep / ab position). */
export const R_CURSOR = 8;
/** Word: pass counter (sweep / ab). */
export const R_PASS = 9;

/** The register file. */
export class RegisterFile {
  /** The shared buffer (pass to the vCPU worker). */
  readonly buffer: SharedArrayBuffer;
  /** The registers. */
  readonly words: Uint32Array;

  /** A zeroed register file, or a view of an existing one. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(CPU_STATE_BYTES);
    this.words = new Uint32Array(this.buffer);
  }

  /** Step count (registers R_STEP_HI:R_STEP_LO). */
  get steps(): number {
    return this.words[R_STEP_HI]! * 2 ** 32 + this.words[R_STEP_LO]!;
  }

  /** True once identification registers are set (boot or a successful import). */
  get loaded(): boolean {
    return this.words[R_MAGIC] === REGISTER_MAGIC;
  }

  /** Sets the identification registers and zeroes the rest (boot). */
  reset(workloadId: number, specHash: number): void {
    this.words.fill(0);
    this.words[R_MAGIC] = REGISTER_MAGIC;
    this.words[R_VERSION] = REGISTER_VERSION;
    this.words[R_WORKLOAD] = workloadId;
    this.words[R_SPEC_HASH] = specHash;
  }

  /** A copy of the registers as bytes (little-endian u32s, CPU_STATE_BYTES long). */
  export(): Uint8Array {
    return new Uint8Array(this.buffer.slice(0));
  }

  /** Loads registers exported by export(), checking they belong to a VM of the same workload and size. */
  import(bytes: Uint8Array, expect: { workloadId: number; specHash: number }): void {
    if (bytes.length !== CPU_STATE_BYTES) {
      throw new MigrationError('ERR_STATE_MISMATCH', `CPU state is ${CPU_STATE_BYTES} bytes, got ${bytes.length}`);
    }
    const incoming = new Uint32Array(CPU_STATE_BYTES / 4);
    new Uint8Array(incoming.buffer).set(bytes);
    if (incoming[R_MAGIC] !== REGISTER_MAGIC || incoming[R_VERSION] !== REGISTER_VERSION) {
      throw new MigrationError('ERR_STATE_MISMATCH', 'CPU state has a bad magic number or layout version');
    }
    if (incoming[R_WORKLOAD] !== expect.workloadId || incoming[R_SPEC_HASH] !== expect.specHash) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        'CPU state comes from a VM with a different workload or memory size',
      );
    }
    this.words.set(incoming);
  }
}
