/**
 * The VM spec: everything that defines a toy VM before it runs — memory size, initial memory,
 * workload and seed — in canonical form. Two VMs with equal specs, run to the same step, are
 * identical (the determinism oracle); the migration handshake sends the spec so the
 * destination can build the same machine.
 */
import { MigrationError } from '../errors.ts';
import { parseSize } from '../units.ts';
import { checkMemoryBytes } from './guest-memory.ts';
import { formatInitSpec, parseInitSpec, type InitSpec } from './init.ts';
import { parseWorkloadSpec, type WorkloadSpec } from './workload-spec.ts';

/** A validated VM spec; the strings are canonical. */
export interface VmSpec {
  /** Guest RAM in bytes: a multiple of 4 KiB in [1 MiB, 16 GiB]. */
  memoryBytes: number;
  /** "zero" | "random" | "mixed:<fraction of zero pages>". */
  init: string;
  /** Canonical workload spec, e.g. "hotset:wss=64MiB,rate=20000". */
  workload: string;
  /** Seed of the initial memory and the workload: an integer in [0, 2^32). */
  seed: number;
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
  return { memoryBytes, init, workload, seed };
}

/** The parsed parts of a (canonical) spec. */
export function resolveVmSpec(spec: VmSpec): { init: InitSpec; workload: WorkloadSpec } {
  return { init: parseInitSpec(spec.init), workload: parseWorkloadSpec(spec.workload, spec.memoryBytes) };
}
