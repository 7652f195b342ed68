/**
 * `livemig migrate --dry-run`: what each technique would cost, without migrating — the VM's dirty
 * rate measured now on the source (query-dirty-rate, 1 s with the curve, as QEMU's
 * calc-dirty-rate), the link as given (--link-bandwidth, --link-rtt; else --max-bandwidth, the
 * most the engine will send), and the prediction model (shared/src/predict) with its default
 * fixed costs (`livemig compare` calibrates them on the link instead). Prints every technique's
 * prediction and what --mode auto would pick for each objective.
 */
import { MigrationError, formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';
import {
  choose,
  DEFAULT_OVERHEADS,
  fitDirtyCurve,
  OBJECTIVES,
  predictAll,
  type Choice,
  type ModelInputs,
  type Prediction,
} from '@livemig/shared/predict';
import { MB, type DirtyRateMeasurement } from '@livemig/shared/vm';
import type { MigrateFlags } from './options.ts';

export interface DryRunFlags extends MigrateFlags {
  vm?: string;
  linkBandwidth?: number;
  linkRtt?: number;
}

export interface DryRun {
  vm: string;
  dirtyRate: DirtyRateMeasurement;
  inputs: ModelInputs;
  predictions: Prediction[];
  /** What --mode auto would choose, per objective (with --max-downtime when given). */
  choices: Choice[];
}

/** The measurement window and sampling of a dry run (as `livemig compare` does before each cell). */
const MEASURE = { calcTimeMs: 1000, samplePagesPerGiB: 16_384, checkpoints: 4 } as const;

export async function dryRun(client: ControlClient, flags: DryRunFlags): Promise<DryRun> {
  const vm = flags.vm!;
  const bandwidthBps = flags.linkBandwidth ?? flags.maxBandwidth;
  if (bandwidthBps === undefined) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      '--dry-run needs the link: give --link-bandwidth RATE (and --link-rtt), or --max-bandwidth (the most the engine will send)',
    );
  }
  const dirtyRate = await client.request('query-dirty-rate', { vm, ...MEASURE });
  const capped = flags.maxBandwidth === undefined ? bandwidthBps : Math.min(bandwidthBps, flags.maxBandwidth);
  const inputs: ModelInputs = {
    memoryBytes: dirtyRate.memoryBytes,
    pageSize: 4096,
    zeroFraction: (dirtyRate.zeroPagesSampled ?? 0) / dirtyRate.pagesSampled,
    dirty: fitDirtyCurve(dirtyRate),
    link: {
      bandwidthBps: capped,
      rttMs: flags.linkRtt ?? 0,
      source: flags.linkBandwidth === undefined ? '--max-bandwidth' : '--link-bandwidth',
    },
    downtimeLimitMs: flags.downtimeLimit,
    maxRounds: flags.maxRounds,
    postcopyAfterRounds: flags.postcopyAfter ?? null,
    overheads: { ...DEFAULT_OVERHEADS },
  };
  const predictions = predictAll(inputs);
  const choices = OBJECTIVES.map((objective) => choose(predictions, objective, flags.maxDowntime));
  return { vm, dirtyRate, inputs, predictions, choices };
}

/** The dry run as a person reads it. Pure. */
export function formatDryRun(run: DryRun): string {
  const { inputs, dirtyRate } = run;
  const curve = inputs.dirty;
  const lines = [
    `Dry run for VM ${run.vm} (${formatBytes(inputs.memoryBytes)}): nothing was migrated.`,
    '',
    `Dirty rate now:  ${dirtyRate.dirtyRateMBps.toFixed(1)} ± ${dirtyRate.standardErrorMBps.toFixed(1)} MB/s over ` +
      `${Math.round(dirtyRate.windowMs)} ms (${dirtyRate.pagesChanged} of ${dirtyRate.pagesSampled} sampled pages changed)`,
    `Dirty curve:     ${(curve.rateBps / MB).toFixed(1)} MB/s at first` +
      (curve.wssBytes === null ? '' : `, saturating at a working set of ${formatBytes(curve.wssBytes)}`),
    `Link:            ${formatRate(inputs.link.bandwidthBps)}, RTT ${inputs.link.rttMs} ms (${inputs.link.source})`,
    `Fixed costs:     the model's defaults (setup ${DEFAULT_OVERHEADS.setupMs} ms, switchover ${DEFAULT_OVERHEADS.switchoverMs} ms); ` +
      '`livemig compare` measures them on the link',
    '',
    'technique  rounds  switchover      total time   downtime   on the wire',
    ...run.predictions.map(
      (p) =>
        `${p.technique.padEnd(9)}  ${String(p.rounds).padStart(6)}  ${p.switchover.padEnd(14)}  ` +
        `${formatDuration(p.totalMs).padStart(10)}  ${formatDuration(p.downtimeMs).padStart(9)}  ${formatBytes(p.wireBytes).padStart(12)}`,
    ),
    '',
    '--mode auto would choose:',
    ...run.choices.map((c) => `  --objective ${c.objective.padEnd(10)}  ${c.technique}: ${c.why}`),
  ];
  return lines.join('\n');
}
