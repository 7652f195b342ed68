/**
 * The flags that describe a VM — --memory, --init, --workload, --seed, --nic, --disk — shared by `livemig
 * run-vm`, `livemig create-vm`, the agent's --vm and `livemig demo`, and their one parser into a
 * checked VmSpec. Each flag is checked on its own as it is parsed (so a bad one is reported as
 * itself, first); specFromFlags checks them together (a workload's sizes against --memory, a NIC
 * only for a workload that drives one, a disk likewise).
 */
import type { Command } from 'commander';
import { MigrationError } from '@livemig/shared';
import { VmHost } from '@livemig/shared/host';
import {
  DEFAULT_SEED,
  MAX_MEMORY_BYTES,
  parseInitSpec,
  parseDiskSize,
  parseNicAddress,
  parseVmSpec,
  parseWorkloadSpec,
  type VmSpec,
} from '@livemig/shared/vm';
import { flag, sizeFlagOf } from './options.ts';

/** The flags `run-vm`, `create-vm`, `agent` and `demo` share, parsed. */
export interface VmFlags {
  memory: number;
  init: string;
  workload: string;
  seed: number;
  nic?: string;
  /** Disk size in bytes; absent = no disk. */
  disk?: number;
}

/** Parses --seed: a whole number in [0, 2^32). */
export const seedFlag = flag((text) => {
  const seed = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(seed) || seed > 0xffffffff) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `--seed must be a whole number in 0..4294967295, got "${text}"`);
  }
  return seed;
});

/** --vm NAME of a VM an agent hosts: 1–64 letters, digits, '.', '_' or '-' (as the agent checks it). */
export const vmNameFlag = flag((text) => VmHost.checkName(text));

/** The spec defaults of a VM an agent boots: its --vm, and `livemig create-vm`. */
export const AGENT_VM_DEFAULTS = { memory: '256MiB', init: 'random', workload: 'idle' } as const;

/** --memory: a VM's memory size in bytes, 1MiB..16GiB, a multiple of 4KiB. */
const memoryFlag = sizeFlagOf((text) => parseVmSpec({ memory: text }).memoryBytes);

const initFlag = flag((text) => {
  parseInitSpec(text);
  return text;
});

/** --workload: its syntax and parameters (sizes within the largest VM; specFromFlags checks --memory). */
const workloadFlag = flag((text) => {
  parseWorkloadSpec(text, MAX_MEMORY_BYTES);
  return text;
});

/** --disk: a disk size in bytes, 1MiB..1TiB, a multiple of 4KiB. */
const diskFlag = sizeFlagOf(parseDiskSize);

/** Add --memory, --init, --workload, --seed, --nic and --disk, with a command's own defaults. */
export function addVmSpecOptions(
  command: Command,
  defaults: { memory: string; init: string; workload: string },
): Command {
  return command
    .option('--memory <size>', 'guest memory, 1MiB..16GiB, a multiple of 4KiB', memoryFlag, memoryFlag(defaults.memory))
    .option(
      '--init <spec>',
      'initial memory: zero | random | mixed:<fraction of zero pages, the rest random> | mixed:zero=F,dup=F,text=F,code=F,random=F (fractions of page kinds summing to 1, a kind left out is 0) | realistic (such a mix, from published measurements of guest RAM: README "Initial memory")',
      initFlag,
      defaults.init,
    )
    .option(
      '--workload <spec>',
      'workload spec, e.g. hotset:wss=64MiB,rate=20000 (see below)',
      workloadFlag,
      defaults.workload,
    )
    .option('--seed <n>', 'seed of the initial memory and the workload', seedFlag, DEFAULT_SEED)
    .option(
      '--nic <ip:port>',
      "the VM's network address (kv workload): its service answers there, and the address moves with the VM",
      flag(parseNicAddress),
    )
    .option(
      '--disk <size>',
      'a virtual disk of this size, 1MiB..1TiB, a multiple of 4KiB (the disk workload needs one; kv may have one, for its write-ahead log): a sparse image, removed with the VM',
      diskFlag,
    );
}

/** The VM spec from the shared flags. */
export function specFromFlags(flags: VmFlags): VmSpec {
  return parseVmSpec({
    memory: flags.memory,
    init: flags.init,
    workload: flags.workload,
    seed: flags.seed,
    nic: flags.nic ?? null,
    disk: flags.disk ?? null,
  });
}
