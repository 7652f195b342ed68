/**
 * `livemig query-dirty-rate`: how fast a VM dirties its memory, measured by the agent over a
 * window by page sampling (QMP `calc-dirty-rate` + `query-dirty-rate`, virsh `domdirtyrate-calc`;
 * the control API's query-dirty-rate). It reads memory only, so it may be asked of a VM that is
 * migrating out. Two lines for a person, `--json` the agent's answer as it is.
 */
import type { Command } from 'commander';
import { formatBytes, formatDuration } from '@livemig/shared';
import type { DirtyRateInfo } from '@livemig/shared/control';
import { DIRTY_RATE_LIMITS, MB, PAGE_SIZE, rateUpperBound95 } from '@livemig/shared/vm';
import { controlUrlFlag, durationInRangeFlag, intInRangeFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';
import { vmNameFlag } from '../vm-flags.ts';

interface QueryDirtyRateFlags extends SecurityFlags {
  control: string;
  vm: string;
  calcTime: number;
  samplePages?: number;
  json?: boolean;
}

const L = DIRTY_RATE_LIMITS;

function mbps(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 1)} MB/s`;
}

/** The measurement as two lines a person reads: the rate with its error, then how it was sampled. */
export function formatDirtyRate(info: DirtyRateInfo): string {
  const pagesPerSec = Math.round((info.dirtyRateMBps * MB) / PAGE_SIZE);
  const rate =
    info.pagesChanged === 0
      ? `${mbps(0)} (below ${mbps(rateUpperBound95(info))} at 95%: no sampled page changed)`
      : `${mbps(info.dirtyRateMBps)} ± ${mbps(info.standardErrorMBps)} (${pagesPerSec} pages/s)`;
  return (
    `${info.vm}: dirty rate ${rate} over ${formatDuration(info.windowMs)}\n` +
    `  ${info.pagesChanged} of ${info.pagesSampled} sampled pages changed; ${formatBytes(info.memoryBytes)} of memory, ${info.method}\n`
  );
}

export function registerQueryDirtyRateCommand(program: Command): void {
  const command = program
    .command('query-dirty-rate')
    .description(
      "Measure a VM's dirty rate on its agent (QMP calc-dirty-rate, virsh domdirtyrate-calc): pages sampled, " +
        'hashed, hashed again after the window; distinct MB/s (10^6 bytes) dirtied. Reads memory only: safe during a migration.',
    )
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', 'the VM to measure', vmNameFlag)
    .option(
      '--calc-time <duration>',
      `the window between the two samplings, ${L.minCalcTimeMs} ms to ${L.maxCalcTimeMs / 1000} s`,
      durationInRangeFlag(L.minCalcTimeMs, L.maxCalcTimeMs),
      L.defaultCalcTimeMs,
    )
    .option(
      '--sample-pages <n>',
      `pages sampled per GiB of guest memory, ${L.minSamplePagesPerGiB} to ${L.maxSamplePagesPerGiB} ` +
        `(default ${L.defaultSamplePagesPerGiB}, as QEMU; at least ${L.minSamplePages} pages in all): more pages, a smaller error`,
      intInRangeFlag(L.minSamplePagesPerGiB, L.maxSamplePagesPerGiB),
    )
    .option('--json', 'print the agent\'s answer, one JSON object: {"vm","dirtyRateMBps","standardErrorMBps",…}');
  addClientSecurityOptions(command).action(async (flags: QueryDirtyRateFlags) => {
    const client = await connectControl(flags.control, flags);
    try {
      const info = await client.request('query-dirty-rate', {
        vm: flags.vm,
        calcTimeMs: flags.calcTime,
        ...(flags.samplePages === undefined ? {} : { samplePagesPerGiB: flags.samplePages }),
      });
      process.stdout.write(flags.json ? `${JSON.stringify(info)}\n` : formatDirtyRate(info));
    } finally {
      client.close();
    }
  });
}
