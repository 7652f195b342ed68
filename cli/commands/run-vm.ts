/**
 * `livemig run-vm`: boot a toy VM in this process (no agent), run it for a number of steps or
 * seconds, and print its figures (steps, achieved write rate, memory digest, CPU state…). The
 * quickest way to see what a workload does, and the determinism check from the shell: same
 * spec, seed and steps ⇒ same digest. With --json, exactly one JSON object on stdout. A VM with
 * --disk gets its image in a temporary directory, removed when the command ends; the result
 * then has the disk digest and the blocks the guest found wrong on read-back (its mismatches).
 *
 * It was `livemig vm` until the agent's VM commands (create-vm, destroy-vm, list) came: a name
 * that reads as "the VMs" belongs to those. `vm` stays as a hidden, deprecated alias that says so.
 */
import type { Command } from 'commander';
import { MigrationError, formatBytes, formatDuration } from '@livemig/shared';
import { ToyVm, findWorkload, workloadHelp } from '@livemig/shared/vm';
import { flag } from '../options.ts';
import { addVmSpecOptions, specFromFlags, type VmFlags } from '../vm-flags.ts';

/** Parses --seconds: a positive number of seconds. */
const secondsFlag = flag((text) => {
  const seconds = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(seconds > 0)) throw new MigrationError('ERR_INVALID_ARGUMENT', `--seconds must be a number > 0, got "${text}"`);
  return seconds;
});

/** Parses --steps: a whole number ≥ 0. */
const stepsFlag = flag((text) => {
  const steps = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(steps)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `--steps must be a whole number ≥ 0, got "${text}"`);
  }
  return steps;
});

/** What `livemig run-vm --json` prints. */
export interface VmRunResult {
  memoryBytes: number;
  init: string;
  workload: string;
  seed: number;
  steps: number;
  pageWrites: number;
  /** Achieved guest page writes per second over the run. */
  writeRatePagesPerSec: number;
  /** What the workload asked for (0 = as fast as it can). */
  requestedWriteRatePagesPerSec: number;
  runMs: number;
  bootMs: number;
  initMs: number;
  digest: string;
  digestMs: number;
  /** Register file, hex. */
  cpuState: string;
  devices: ReturnType<ToyVm['exportDeviceState']>;
  possiblyNonZeroPages: number;
  pageCount: number;
  /** The disk (--disk): size, bytes written, disk digest (disk/digest.ts), the guest's mismatch count; null without one. */
  disk: { sizeBytes: number; allocatedBytes: number; digest: string; mismatches: number } | null;
}

interface VmCommandFlags extends VmFlags {
  steps?: number;
  seconds?: number;
  json?: boolean;
}

/** Registers `livemig run-vm`, and `livemig vm`, its old name, hidden. */
export function registerRunVmCommand(program: Command): void {
  addRunVmCommand(program, 'run-vm');
  addRunVmCommand(program, 'vm', { deprecated: true });
}

function addRunVmCommand(program: Command, name: string, options: { deprecated?: boolean } = {}): void {
  const command = program
    .command(name, { hidden: options.deprecated === true })
    .description(
      'Boot a toy VM in this process (no agent), run it for --steps N or --seconds S, and print its figures ' +
        '(steps, write rate, digest).',
    );
  addVmSpecOptions(command, { memory: '64MiB', init: 'zero', workload: 'idle' });
  command
    .option('--steps <n>', 'run exactly N steps (paced as the workload asks)', stepsFlag)
    .option('--seconds <s>', 'run for S seconds of wall time', secondsFlag)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText('after', `\n${workloadHelp()}\n\nSame spec, seed and --steps ⇒ same digest.`)
    .action(async (flags: VmCommandFlags) => {
      if (options.deprecated) process.stderr.write('livemig: `livemig vm` is deprecated: it is `livemig run-vm` now\n');
      const result = await runVmCommand(flags);
      process.stdout.write(flags.json ? JSON.stringify(result) + '\n' : formatVmResult(result));
    });
}

async function runVmCommand(flags: VmCommandFlags): Promise<VmRunResult> {
  const spec = specFromFlags(flags);
  const { steps, seconds } = flags;
  if ((steps === undefined) === (seconds === undefined)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', 'give exactly one of --steps N or --seconds S');
  }
  if (spec.nic !== null) {
    // An input-driven guest only steps when datagrams come in: --steps N would wait forever.
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      'the kv workload runs on requests from the network: host it in an agent ' +
        '(livemig source --vm NAME --workload kv --nic IP:PORT) or try `livemig demo --workload kv --probe`',
    );
  }
  const bootStarted = performance.now();
  const vm = await ToyVm.boot(spec);
  const bootMs = performance.now() - bootStarted;
  try {
    if (steps !== undefined) {
      await vm.runSteps(steps);
    } else {
      vm.start();
      await new Promise((resolve) => setTimeout(resolve, seconds! * 1000));
      await vm.pause();
    }
    const stats = vm.stats();
    const digestStarted = performance.now();
    const digest = await vm.digest();
    const digestMs = performance.now() - digestStarted;
    const diskDigest = await vm.diskDigest();
    const disk =
      vm.disk && diskDigest !== null
        ? {
            sizeBytes: vm.disk.sizeBytes,
            allocatedBytes: vm.disk.allocatedBytes,
            digest: diskDigest,
            mismatches: vm.diskMismatches ?? 0,
          }
        : null;
    return {
      memoryBytes: spec.memoryBytes,
      init: spec.init,
      workload: spec.workload,
      seed: spec.seed,
      steps: vm.steps,
      pageWrites: stats.pageWrites,
      writeRatePagesPerSec: stats.averageWriteRatePagesPerSec,
      requestedWriteRatePagesPerSec: stats.requestedWriteRatePagesPerSec,
      runMs: stats.runningMs,
      bootMs,
      initMs: vm.initMs,
      digest,
      digestMs,
      cpuState: Buffer.from(vm.exportCpuState()).toString('hex'),
      devices: vm.exportDeviceState(),
      possiblyNonZeroPages: vm.possiblyNonZero().count,
      pageCount: vm.memory.pageCount,
      disk,
    };
  } finally {
    await vm.destroy();
  }
}

/** Formats a pages-per-second figure: "20.0 k pages/s". */
export function formatPageRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M pages/s`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k pages/s`;
  return `${perSec.toFixed(0)} pages/s`;
}

function formatVmResult(r: VmRunResult): string {
  const requested =
    findWorkload(r.workload.split(':')[0]!)?.writesPerStep === 0
      ? 'none, it only ticks'
      : r.requestedWriteRatePagesPerSec > 0
        ? formatPageRate(r.requestedWriteRatePagesPerSec)
        : 'as fast as it can';
  const rows: [string, string][] = [
    ['vm', `${formatBytes(r.memoryBytes)}, init ${r.init}, workload ${r.workload}, seed ${r.seed}`],
    ['boot', `${formatDuration(r.bootMs)} (memory init ${formatDuration(r.initMs)})`],
    ['ran', `${r.steps} steps in ${formatDuration(r.runMs)}`],
    ['write rate', `${formatPageRate(r.writeRatePagesPerSec)} (requested: ${requested})`],
    ['non-zero', `${r.possiblyNonZeroPages} of ${r.pageCount} pages possibly non-zero`],
    ['digest', `${r.digest} (${formatDuration(r.digestMs)})`],
  ];
  if (r.disk) {
    rows.push([
      'disk',
      `${formatBytes(r.disk.sizeBytes)}, ${formatBytes(r.disk.allocatedBytes)} written, digest ${r.disk.digest}, ` +
        `${r.disk.mismatches} blocks read back wrong`,
    ]);
  }
  return rows.map(([k, v]) => `${k.padEnd(11)} ${v}\n`).join('');
}
