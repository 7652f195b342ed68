/**
 * `livemig migrate --dry-run`: what each technique would cost, without migrating — the VM's dirty
 * rate measured now on the source (query-dirty-rate, 1 s with the curve, as QEMU's
 * calc-dirty-rate), the link as given (--link-bandwidth, --link-rtt; else --max-bandwidth, the
 * most the engine will send), and the prediction model (shared/src/predict) with its default
 * fixed costs (`livemig compare` calibrates them on the link instead). Prints every technique's
 * prediction and what --mode auto would pick for each objective.
 *
 * With encoding or throttle flags (--compress, --compress-threads, --xbzrle, --xbzrle-cache,
 * --dedup, --auto-converge and its knobs, --dirty-limit) it also predicts each technique with
 * them (encodings.ts, throttle.ts), and --mode auto's choice is made among those: that is what a
 * migration with these flags would run. A dry run cannot see the VM's pages, so compression,
 * deltas and references use the model's priors (DEFAULT_PAGE_FIGURES: codec speeds and ratios
 * measured on `realistic` memory on this machine, no duplicates) and say so; `livemig compare`
 * samples each VM's pages instead.
 */
import { MigrationError, formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';
import {
  AUTO_CONVERGE_DEFAULTS,
  choose,
  DEFAULT_OVERHEADS,
  DEFAULT_PAGE_FIGURES,
  describeOptions,
  fitDirtyCurve,
  formatTechnique,
  OBJECTIVES,
  predictAll,
  type Choice,
  type ModelInputs,
  type PageFigures,
  type Prediction,
  type TechniqueOptions,
} from '@livemig/shared/predict';
import { MB, type DirtyRateMeasurement } from '@livemig/shared/vm';
import { encodingParams } from './encoding-flags.ts';
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
  /** Every technique without options (raw pages, no throttle). */
  predictions: Prediction[];
  /** With encoding or throttle flags: the options, the pages' figures assumed, and every technique with them. */
  withOptions?: { options: TechniqueOptions; pages: PageFigures; predictions: Prediction[] };
  /** What --mode auto would choose, per objective (with --max-downtime when given; among withOptions when given). */
  choices: Choice[];
}

/**
 * The encoding and throttle flags given, as the model's options (absent ones: not modelled).
 * The auto-converge knobs default to QEMU's, as the engine's do; --max-cpu-throttle applies to
 * either throttle.
 */
export function optionsFromFlags(flags: MigrateFlags): TechniqueOptions {
  const d = AUTO_CONVERGE_DEFAULTS;
  const maxPercent = flags.maxCpuThrottle ?? d.maxPercent;
  return {
    // The encoding flags as migrate params: the same names as the model's options.
    ...encodingParams(flags),
    ...(flags.channels !== undefined && flags.channels > 1 ? { channels: flags.channels } : {}),
    ...(flags.autoConverge
      ? {
          throttle: {
            kind: 'auto-converge' as const,
            initialPercent: flags.cpuThrottleInitial ?? d.initialPercent,
            incrementPercent: flags.cpuThrottleIncrement ?? d.incrementPercent,
            maxPercent,
            triggerThresholdPercent: flags.throttleTriggerThreshold ?? d.triggerThresholdPercent,
          },
        }
      : flags.dirtyLimit !== undefined
        ? { throttle: { kind: 'dirty-limit' as const, limitBps: flags.dirtyLimit, maxPercent } }
        : {}),
  };
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
  // Refused before anything is measured, as the agent would refuse the migration.
  if (flags.autoConverge && flags.dirtyLimit !== undefined) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      '--auto-converge and --dirty-limit are two ways to throttle: give one',
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
  const options = optionsFromFlags(flags);
  const withOptions =
    Object.keys(options).length === 0
      ? undefined
      : {
          options,
          pages: DEFAULT_PAGE_FIGURES,
          predictions: predictAll({ ...inputs, options, pages: DEFAULT_PAGE_FIGURES }),
        };
  const pool = withOptions?.predictions ?? predictions;
  const choices = OBJECTIVES.map((objective) => choose(pool, objective, flags.maxDowntime));
  return { vm, dirtyRate, inputs, predictions, ...(withOptions ? { withOptions } : {}), choices };
}

function predictionTable(predictions: readonly Prediction[]): string[] {
  const guest = predictions.some((p) => p.throttle);
  return [
    `technique  rounds  switchover      total time   downtime   on the wire${guest ? '   guest speed' : ''}`,
    ...predictions.map(
      (p) =>
        `${p.technique.padEnd(9)}  ${String(p.rounds).padStart(6)}  ${p.switchover.padEnd(14)}  ` +
        `${formatDuration(p.totalMs).padStart(10)}  ${formatDuration(p.downtimeMs).padStart(9)}  ${formatBytes(p.wireBytes).padStart(12)}` +
        (guest ? `  ${p.throttle ? `${Math.round(p.throttle.guestSpeed * 100)} %`.padStart(11) : '       100 %'}` : ''),
    ),
  ];
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
    ...predictionTable(run.predictions),
    ...(run.withOptions ? optionLines(run.withOptions) : []),
    '',
    `--mode auto would choose${run.withOptions ? ' (with these options)' : ''}:`,
    ...run.choices.map((c) => `  --objective ${c.objective.padEnd(10)}  ${c.technique}: ${c.why}`),
  ];
  return lines.join('\n');
}

/** The predictions with the flags' options, and what they assumed. */
function optionLines(w: NonNullable<DryRun['withOptions']>): string[] {
  const pre = w.predictions.find((p) => p.technique === 'precopy');
  const lines = [
    '',
    `With ${describeOptions(w.options)} (${formatTechnique({ base: 'precopy', options: w.options })}):`,
  ];
  if (w.options.compress !== undefined || w.options.xbzrle !== undefined || w.options.dedup !== undefined) {
    const codecs = (['lz4', 'brotli'] as const)
      .flatMap((codec) => {
        const f = w.pages.codecs[codec];
        return f ? [`${codec} ${f.ratio.toFixed(2)} at ${formatRate(f.bps)} a thread`] : [];
      })
      .join(', ');
    lines.push(
      `Pages:           ${w.pages.source}: compression ratio ${codecs}; delta ${w.pages.deltaRatio} of a page; ` +
        `${(w.pages.dupFraction * 100).toFixed(0)} % duplicates`,
    );
    if (pre?.compression) {
      lines.push(
        `Compression:     ${pre.compression.codec ?? 'none'} on this link (pages at ${formatRate(pre.compression.pageRateBps)})`,
      );
    }
  }
  if (pre?.throttle) {
    lines.push(
      `Throttle:        peak ${pre.throttle.peakPercent} % over ${pre.throttle.throttledRounds} rounds; the guest at ` +
        `${Math.round(pre.throttle.guestSpeed * 100)} % of its speed during pre-copy`,
    );
  }
  lines.push('(post-copy pushes raw pages and takes no throttle: its row is the same as without options)');
  return [...lines, ...predictionTable(w.predictions)];
}
