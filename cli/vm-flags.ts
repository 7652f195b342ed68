/**
 * The flags that describe a VM — --memory, --init, --workload, --seed, --nic — shared by `livemig vm`
 * and `livemig demo`, and their one parser into a checked VmSpec.
 */
import type { Command } from 'commander';
import { MigrationError } from '@livemig/shared';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';

/** The flags `vm` and `demo` share. */
export interface VmFlags {
  memory: string;
  init: string;
  workload: string;
  seed: string;
  nic?: string;
}

/** Parses --seed: a whole number in [0, 2^32). */
export function parseSeedFlag(text: string): number {
  const seed = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(seed) || seed > 0xffffffff) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `--seed must be a whole number in 0..4294967295, got "${text}"`);
  }
  return seed;
}

/** Add --memory, --init, --workload and --seed, with a command's own defaults. */
export function addVmSpecOptions(
  command: Command,
  defaults: { memory: string; init: string; workload: string },
): Command {
  return command
    .option('--memory <size>', 'guest memory, 1MiB..16GiB, a multiple of 4KiB', defaults.memory)
    .option('--init <spec>', 'initial memory: zero | random | mixed:<fraction of zero pages>', defaults.init)
    .option('--workload <spec>', 'workload spec, e.g. hotset:wss=64MiB,rate=20000 (see below)', defaults.workload)
    .option('--seed <n>', 'seed of the initial memory and the workload', '1')
    .option(
      '--nic <ip:port>',
      "the VM's network address (kv workload): its service answers there, and the address moves with the VM",
    );
}

/** The VM spec from the shared flags. */
export function specFromFlags(flags: VmFlags): VmSpec {
  return parseVmSpec({
    memory: flags.memory,
    init: flags.init,
    workload: flags.workload,
    seed: parseSeedFlag(flags.seed),
    nic: flags.nic ?? null,
  });
}
