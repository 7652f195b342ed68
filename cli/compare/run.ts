/**
 * `livemig compare`'s runner: every cell of the matrix, link by link (one set of agents, or one
 * lab, per link), each cell in four steps:
 *
 *   1. boot the VM on the source and let it run; measure its dirty rate the way QEMU's
 *      calc-dirty-rate does (1 s, with the curve at 62-500 ms), and its steps/s meanwhile (the
 *      unmigrated rate, for slowdown);
 *   2. predict every technique with the model (shared/src/predict) from that curve and what was
 *      measured of the link — before the migration, never after: the link's bandwidth and the
 *      fixed costs come from an idle calibration migration of the same VM size on the same link,
 *      run first with raw pages (kept in results.json) — the switchovers' costs and the
 *      stop-and-copy's rate then kept up to date by the cells before (cost-history.ts); the encodings from the VM's pages as
 *      sampled here (the first 8 MiB of a VM of its --init, through the real codecs, once per
 *      --init: sample-pages.ts): every technique as the engine runs it (compress auto, where
 *      the pages compress), and a technique with options (precopy+compress, …) with them;
 *   3. migrate (auto: the agent decides itself, from its own measurements; a technique with
 *      options: its mode with their flags, e.g. --compress lz4, --auto-converge), following the
 *      report; a kv VM is probed throughout, from before the measurement of step 1 (its
 *      clients' writes are part of its dirty rate) to after the migration (every request kept);
 *   4. destroy the VM wherever it ended up.
 *
 * A cell that fails is recorded with its error and the run goes on; `signal` (Ctrl-C) stops
 * before the next cell. results.json is rewritten after every cell, so an interrupted or
 * crashed run keeps what it did.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseHostPort, toMigrationError } from '@livemig/shared';
import type { MigrateParams } from '@livemig/shared/control';
import {
  choose,
  fitDirtyCurve,
  overheadsFromIdle,
  predict,
  predictAll,
  sampleCodecFigures,
  samplePages,
  type LinkEstimate,
  type ModelInputs,
  type Objective,
  type Overheads,
  type PageFigures,
  type TechniqueOptions,
} from '@livemig/shared/predict';
import type { MigrationReport } from '@livemig/shared/report';
import { MB, parseInitSpec, type DirtyRateMeasurement } from '@livemig/shared/vm';
import { followMigration } from '../follow-migration.ts';
import { networkSection, startProbe, type RunningProbe } from '../probe/during.ts';
import { linkUnavailable, withLink, type LinkEnv } from './links.ts';
import { cellsOf, type Matrix } from './matrix.ts';
import { optionParams, techniqueCase } from './techniques.ts';
import { costSamplesOf, emptyCostHistory, learnedCosts, recordCosts, type CostHistory } from './cost-history.ts';
import {
  COMPARE_SCHEMA,
  type CellResult,
  type CellSpec,
  type CompareResults,
  type LinkCase,
  type WorkloadCase,
} from './results.ts';

/** The engine's defaults the predictions assume (every cell runs with them). */
const DOWNTIME_LIMIT_MS = 300;
const MAX_ROUNDS = 30;
/** The guest of the calibration that measures the resend rate: a 16 MiB hot set, resent every round. */
const CALIBRATION_HOT_SET = 'hotset:wss=16MiB,rate=20000';
/** The warm-up migrations' VM size (a few MB: one-time costs, not the link, are what it is for). */
const WARM_UP_BYTES = 8 << 20;
/**
 * The calibrations send raw pages: they measure the link, and compression is the model's to
 * predict (encodings.ts) — with the engine's default (compress auto) a calibration of
 * compressible memory measured the codec's pace, not the link's (14.5 MB/s on a 25 MB/s cap).
 */
const RAW_PAGES = { compress: 'off' } as const;
/** The dirty-rate measurement before each cell: QEMU's window, its most samples, the curve. */
const MEASURE = { calcTimeMs: 1000, samplePagesPerGiB: 16_384, checkpoints: 4 } as const;

export interface Progress {
  /** Cells done, of `total`; the one starting now. */
  done: number;
  total: number;
  cell: CellSpec | null;
  /** Estimated ms left (from the cells so far), or null before one ended. */
  etaMs: number | null;
  /** A line about what just happened (a cell's outcome, a calibration, a link skipped). */
  note?: string;
}

export interface CompareRunOptions {
  matrix: Matrix;
  /** Directory results.json goes to (rewritten after each cell). */
  out: string;
  onProgress?: (progress: Progress) => void;
  /** Aborted: no new cell starts; what is done is returned (interrupted: true). */
  signal?: AbortSignal;
}

/** Idle migrations of one VM size on one link: the model's link bandwidth and fixed costs. */
export interface Calibration {
  link: string;
  memoryBytes: number;
  estimate: LinkEstimate;
  /** From the idle pre-copy, and from the idle post-copy (longer setup: the destination's vCPU starts first). */
  overheads: Overheads;
  postcopyOverheads: Overheads;
  /** The stop-and-copy's rate: the hot-set migration's final round, when large enough to time. */
  stopCopyBps: number | undefined;
  /**
   * What each completed plain cell's switchover cost since, and the rate of its final set
   * (cost-history.ts): the next cells are predicted from these and the calibration's figures.
   */
  history: CostHistory;
  /** The idle pre-copy and post-copy, and the hot-set pre-copy that measured the resend rate. */
  reports: { precopy: MigrationReport; postcopy: MigrationReport; hot: MigrationReport };
}

export async function runCompare(
  options: CompareRunOptions,
): Promise<CompareResults & { calibrations: Calibration[] }> {
  const { matrix } = options;
  const skippedLinks: CompareResults['skippedLinks'] = [];
  const runnable = matrix.links.filter((link) => {
    const reason = linkUnavailable(link);
    if (reason !== undefined) skippedLinks.push({ name: link.name, reason });
    return reason === undefined;
  });
  const cells = cellsOf(matrix, runnable);
  const results: CompareResults & { calibrations: Calibration[] } = {
    schema: COMPARE_SCHEMA,
    startedAt: new Date().toISOString(),
    endedAt: new Date().toISOString(),
    host: { cpus: cpus().length, node: process.version, root: process.getuid?.() === 0 },
    matrix: {
      techniques: matrix.techniques,
      workloads: matrix.workloads,
      links: matrix.links.map(({ workloads: _w, techniques: _t, ...link }) => link),
      repeat: matrix.repeat,
    },
    skippedLinks,
    interrupted: false,
    cells: [],
    calibrations: [],
  };
  await mkdir(options.out, { recursive: true });
  const save = async (): Promise<void> => {
    results.endedAt = new Date().toISOString();
    await writeFile(join(options.out, 'results.json'), JSON.stringify(results, null, 1) + '\n');
  };
  for (const skipped of skippedLinks) {
    options.onProgress?.({
      done: 0,
      total: cells.length,
      cell: null,
      etaMs: null,
      note: `skipped link ${skipped.name}: ${skipped.reason}`,
    });
  }
  const started = performance.now();
  let index = 0;
  // The VM's pages as the encodings see them, per --init (a cell's seed changes the pages, not their character).
  const pageFigures = new Map<string, Promise<PageFigures>>();
  for (const link of runnable) {
    const linkCells = cells.filter((c) => c.link.name === link.name);
    if (linkCells.length === 0) continue;
    if (options.signal?.aborted) break;
    try {
      await withLink(linkCells[0]!.link, async (env) => {
        for (const spec of linkCells) {
          if (options.signal?.aborted) return;
          const done = results.cells.length;
          const elapsed = performance.now() - started;
          options.onProgress?.({
            done,
            total: cells.length,
            cell: spec,
            etaMs: done === 0 ? null : (elapsed / done) * (cells.length - done),
          });
          const calibration = await calibrationFor(env, spec.workload, results.calibrations, ++index, options);
          const result = await runCell(env, spec, calibration, ++index, pageFigures);
          results.cells.push(result);
          options.onProgress?.({
            done: results.cells.length,
            total: cells.length,
            cell: spec,
            etaMs: null,
            note: summaryLine(result),
          });
          await save();
        }
      });
    } catch (error) {
      // The link itself failed (the lab would not build, an agent died): its cells not run are errors.
      const failure = toMigrationError(error);
      for (const spec of linkCells.filter((c) => !results.cells.some((r) => r.spec.id === c.id))) {
        results.cells.push(errorCell(spec, failure));
      }
      options.onProgress?.({
        done: results.cells.length,
        total: cells.length,
        cell: null,
        etaMs: null,
        note: `link ${link.name} failed: ${failure.code}: ${failure.message}`,
      });
      await save();
    }
  }
  results.interrupted = options.signal?.aborted === true;
  await save();
  return results;
}

function summaryLine(r: CellResult): string {
  if (!r.report) return `${r.spec.id}: ${r.outcome} ${r.error?.code ?? ''} ${r.error?.message ?? ''}`;
  const t = r.report.times;
  const predicted = r.predicted
    ? ` (predicted ${(r.predicted.totalMs / 1000).toFixed(2)} s, ${Math.round(r.predicted.downtimeMs)} ms)`
    : '';
  return (
    `${r.spec.id}: ${r.outcome}, ${(t.totalMs / 1000).toFixed(2)} s total, ` +
    `${t.downtimeMs === null ? '—' : Math.round(t.downtimeMs)} ms down, ${(r.report.bytes.wire / MB).toFixed(1)} MB${predicted}`
  );
}

function errorCell(spec: CellSpec, error: { code: string; message: string }): CellResult {
  return {
    spec,
    outcome: 'error',
    error: { code: error.code, message: error.message },
    startedAt: new Date().toISOString(),
    wallMs: 0,
    measured: { dirtyRate: null, link: null },
    predicted: null,
    predictions: null,
    report: null,
  };
}

/** The calibration for this VM size on this link: measured once (an idle pre-copy), then reused. */
async function calibrationFor(
  env: LinkEnv,
  workload: WorkloadCase,
  done: Calibration[],
  index: number,
  options: CompareRunOptions,
): Promise<Calibration | null> {
  const known = done.find((c) => c.link === env.link.name && c.memoryBytes === workload.memoryBytes);
  if (known) return known;
  const name = `calibrate${index}`;
  try {
    const idle = async (
      mode: 'precopy' | 'postcopy',
      vm: string,
      guest = 'idle',
      memory = workload.memoryBytes,
    ): Promise<MigrationReport> => {
      await env.source.request('create-vm', {
        name: vm,
        memory,
        init: workload.init,
        workload: guest,
        seed: index,
      });
      const report = await migrate(env, vm, mode, env.link, undefined, RAW_PAGES);
      await destroy(env, vm, report);
      if (report.outcome !== 'completed' || report.times.downtimeMs === null) {
        throw new Error(`calibration ${mode} migration ${report.outcome}: ${report.error?.message ?? 'no downtime'}`);
      }
      return report;
    };
    // A fresh agent's first migrations pay one-time costs (its first vCPU worker loads its
    // modules: ~0.6 s here) that no later cell pays: warm both agents up first, in both directions
    // of use the cells make (pre-copy and post-copy), with a small VM, and measure after.
    if (!done.some((c) => c.link === env.link.name)) {
      for (const mode of ['precopy', 'postcopy'] as const) {
        const vm = `${name}-warm-${mode}`;
        await env.source.request('create-vm', {
          name: vm,
          memory: WARM_UP_BYTES,
          init: 'random',
          workload: 'idle',
          seed: index,
        });
        await destroy(env, vm, await migrate(env, vm, mode, env.link));
      }
    }
    const precopy = await idle('precopy', `${name}-pre`);
    const postcopy = await idle('postcopy', `${name}-post`);
    const round0 = precopy.rounds[0];
    if (!round0) throw new Error('calibration pre-copy migration had no round 0');
    // The rate of resends: a VM writing a hot set, pre-copy — its rounds after the first and its
    // stop-and-copy (the report's last round), those large enough to time.
    const hot = await idle('precopy', `${name}-hot`, CALIBRATION_HOT_SET);
    const resends = hot.rounds.slice(1).filter((r) => r.bytes >= 1 << 20 && r.ms >= 5);
    const resendBandwidthBps =
      resends.length === 0
        ? undefined
        : resends.reduce((a, r) => a + r.bytes, 0) / (resends.reduce((a, r) => a + r.ms, 0) / 1000);
    // The stop-and-copy's rate: the same migration's final set (its last round), the guest paused.
    const stopCopyBps = hot.rounds.length > 1 ? costSamplesOf(hot, 0, undefined).stopCopyBps : undefined;
    const rttMs = env.measured?.rttMs ?? precopy.times.rttMs ?? 0;
    const overheadsOf = (report: MigrationReport, sendMs: number): Overheads =>
      overheadsFromIdle({
        setupMs: report.times.setupMs,
        downtimeMs: report.times.downtimeMs!,
        totalMs: report.times.totalMs,
        round0Ms: sendMs,
        rttMs,
        postcopy: report.mode === 'postcopy',
      });
    // The switchover's own cost is a few ms, and one idle migration's downtime is one sample of
    // it: a run measured 14 ms on a link where the same idle VMs then paused 3–4 ms, and every
    // cell's predicted downtime carried the outlier. So two more small idle migrations each way
    // (the switchover does not depend on the VM's size), and the median of the three.
    const switchoverOf = async (mode: 'precopy' | 'postcopy', first: Overheads): Promise<number> => {
      const samples = [first.switchoverMs];
      for (let i = 0; i < 2; i++) {
        const small = await idle(mode, `${name}-${mode}-${i}`, 'idle', WARM_UP_BYTES);
        samples.push(overheadsOf(small, 0).switchoverMs);
      }
      return samples.sort((a, b) => a - b)[1]!;
    };
    const overheads = overheadsOf(precopy, round0.ms);
    const postcopyOverheads = overheadsOf(postcopy, postcopy.postcopy?.postcopyMs ?? 0);
    overheads.switchoverMs = await switchoverOf('precopy', overheads);
    postcopyOverheads.switchoverMs = await switchoverOf('postcopy', postcopyOverheads);
    const calibration: Calibration = {
      link: env.link.name,
      memoryBytes: workload.memoryBytes,
      estimate: {
        bandwidthBps: round0.bandwidthBps,
        ...(resendBandwidthBps === undefined ? {} : { resendBandwidthBps }),
        rttMs,
        source: `idle calibration migration on this link (round 0: ${(round0.bytes / MB).toFixed(1)} MB in ${Math.round(round0.ms)} ms)`,
      },
      overheads,
      postcopyOverheads,
      stopCopyBps,
      history: emptyCostHistory(),
      reports: { precopy, postcopy, hot },
    };
    done.push(calibration);
    const o = calibration.overheads;
    const p = calibration.postcopyOverheads;
    options.onProgress?.({
      done: 0,
      total: 0,
      cell: null,
      etaMs: null,
      note:
        `calibrated ${env.link.name} (${(workload.memoryBytes / 2 ** 20).toFixed(0)} MiB): ${(calibration.estimate.bandwidthBps / MB).toFixed(1)} MB/s ` +
        `(resends ${resendBandwidthBps === undefined ? '—' : (resendBandwidthBps / MB).toFixed(1)} MB/s, ` +
        `stop-and-copy ${stopCopyBps === undefined ? '—' : (stopCopyBps / MB).toFixed(1)} MB/s), ` +
        `setup ${Math.round(o.setupMs)} ms (post-copy ${Math.round(p.setupMs)} ms), switchover ${Math.round(o.switchoverMs)} / ${Math.round(p.switchoverMs)} ms`,
    });
    return calibration;
  } catch (error) {
    options.onProgress?.({
      done: 0,
      total: 0,
      cell: null,
      etaMs: null,
      note: `calibration on ${env.link.name} failed: ${toMigrationError(error).message}`,
    });
    return null;
  }
}

/** The figures of a VM's pages for the model's encodings: sampled once per --init (sample-pages.ts). */
function figuresFor(cache: Map<string, Promise<PageFigures>>, init: string): Promise<PageFigures> {
  let figures = cache.get(init);
  if (!figures) {
    figures = samplePages(parseInitSpec(init), 1).then((pages) =>
      sampleCodecFigures(pages, `${pages.length} pages of a --init ${init} VM, through the real codecs on this host`),
    );
    cache.set(init, figures);
  }
  return figures;
}

/**
 * The options the engine runs a cell with, as the model takes them: the technique's, over the
 * engine's default `--compress auto` where the VM's pages compress (on pages no codec shrinks,
 * auto sends them raw and the raw prediction is the one: the options are left out).
 */
function modelOptions(options: TechniqueOptions, pages: PageFigures): TechniqueOptions {
  const compressible = Object.values(pages.codecs).some((c) => c.ratio < 1);
  return compressible ? { compress: 'auto', ...options } : options;
}

async function runCell(
  env: LinkEnv,
  spec: CellSpec,
  calibration: Calibration | null,
  index: number,
  pageFigures: Map<string, Promise<PageFigures>>,
): Promise<CellResult> {
  const startedAt = new Date().toISOString();
  const wallStart = performance.now();
  const { workload } = spec;
  const name = `cell${index}`;
  const kv = /^kv(:|$)/.test(workload.workload);
  let dirtyRate: DirtyRateMeasurement | null = null;
  let probe: RunningProbe | undefined;
  let report: MigrationReport | null = null;
  const base = {
    spec,
    startedAt,
    measured: { dirtyRate: null as DirtyRateMeasurement | null, link: calibration?.estimate ?? null },
    predicted: null,
    predictions: null,
  };
  try {
    const nic = kv ? await env.serviceAddress() : undefined;
    await env.source.request('create-vm', {
      name,
      memory: workload.memoryBytes,
      init: workload.init,
      workload: workload.workload,
      seed: index,
      ...(nic ? { nic } : {}),
    });
    // A service's clients start first: they write to it, and what they dirty is part of the load
    // the migration meets, so the measurement (and the prediction) must see it.
    if (kv && nic) {
      probe = startProbe({ target: parseHostPort(nic), intervalMs: workload.probeIntervalMs ?? 2 });
      await probe.answered;
    }
    const before = await stepsOf(env, name);
    dirtyRate = await env.source.request('query-dirty-rate', { vm: name, ...MEASURE });
    const after = await stepsOf(env, name);
    const baselineStepsPerSec = ((after.steps - before.steps) / (after.at - before.at)) * 1000;
    // The calibration's fixed costs, kept up to date by the cells before this one (cost-history.ts).
    const costs = calibration
      ? learnedCosts(
          {
            precopySwitchoverMs: calibration.overheads.switchoverMs,
            postcopySwitchoverMs: calibration.postcopyOverheads.switchoverMs,
            stopCopyBps: calibration.stopCopyBps,
          },
          calibration.history,
          nic !== undefined,
        )
      : null;
    const link = calibration && costs ? linkWith(calibration.estimate, costs.stopCopyBps) : null;
    const inputs: ModelInputs | null =
      calibration && costs && link
        ? {
            memoryBytes: workload.memoryBytes,
            pageSize: 4096,
            zeroFraction: (dirtyRate.zeroPagesSampled ?? 0) / dirtyRate.pagesSampled,
            dirty: fitDirtyCurve(dirtyRate),
            link,
            downtimeLimitMs: DOWNTIME_LIMIT_MS,
            maxRounds: MAX_ROUNDS,
            postcopyAfterRounds: null,
            overheads: { ...calibration.overheads, switchoverMs: costs.precopySwitchoverMs },
            postcopyOverheads: { ...calibration.postcopyOverheads, switchoverMs: costs.postcopySwitchoverMs },
          }
        : null;
    const technique = techniqueCase(spec.technique);
    const objective = technique.objective ?? undefined;
    const options = technique.options;
    const pages = await figuresFor(pageFigures, workload.init);
    // Every plain technique as the engine runs it (compress auto on pages that compress), and a
    // technique with options predicted with them too (its base without them is among the plain).
    const defaults = modelOptions({}, pages);
    const plain = inputs
      ? predictAll(Object.keys(defaults).length > 0 ? { ...inputs, options: defaults, pages } : inputs)
      : null;
    const variant =
      inputs && Object.keys(options).length > 0 && technique.mode !== 'auto'
        ? predict(technique.mode, { ...inputs, options: modelOptions(options, pages), pages })
        : null;
    const predictions = plain && variant ? [...plain, variant] : plain;
    const choice = plain && objective ? choose(plain, objective) : undefined;
    report = await migrate(env, name, technique.mode, env.link, objective, optionParams(options));
    // A technique with options (a codec, a throttle) times its final set differently: plain cells only.
    if (calibration && costs && Object.keys(options).length === 0) {
      const samples = costSamplesOf(report, calibration.estimate.rttMs, costs.stopCopyBps);
      recordCosts(calibration.history, samples, nic !== undefined);
    }
    let samples: CellResult['probe'];
    if (probe) {
      const seen = await probe.finish();
      probe = undefined;
      report = { ...report, network: networkSection(seen, report) };
      samples = { intervalMs: seen.intervalMs, samples: seen.timeline };
    }
    // Auto: the prediction (made before) of the technique the agent then chose itself.
    const ran = report.auto?.chosen ?? choice?.technique ?? technique.mode;
    const predicted = variant ?? plain?.find((p) => p.technique === ran) ?? null;
    return {
      ...base,
      outcome: report.outcome,
      error: report.error,
      wallMs: performance.now() - wallStart,
      measured: { dirtyRate, link: link ?? calibration?.estimate ?? null },
      predicted,
      predictions,
      ...(choice ? { choice } : {}),
      report,
      ...(samples ? { probe: samples } : {}),
      baselineStepsPerSec,
      pages,
    };
  } catch (error) {
    const failure = toMigrationError(error);
    return {
      ...base,
      outcome: 'error',
      error: { code: failure.code, message: failure.message },
      wallMs: performance.now() - wallStart,
      measured: { dirtyRate, link: calibration?.estimate ?? null },
      report,
    };
  } finally {
    await probe?.abandon();
    await destroy(env, name, report);
  }
}

/** The calibration's link estimate, with the stop-and-copy's rate to predict from when there is one. */
function linkWith(estimate: LinkEstimate, stopCopyBps: number | undefined): LinkEstimate {
  return stopCopyBps === undefined ? estimate : { ...estimate, stopCopyBandwidthBps: stopCopyBps };
}

async function stepsOf(env: LinkEnv, name: string): Promise<{ steps: number; at: number }> {
  const { vms } = await env.source.request('query-vms', {});
  return { steps: vms.find((v) => v.name === name)?.steps ?? 0, at: performance.now() };
}

async function migrate(
  env: LinkEnv,
  vm: string,
  mode: 'precopy' | 'postcopy' | 'hybrid' | 'auto',
  link: LinkCase,
  objective?: Objective,
  extra: Partial<MigrateParams> = {},
): Promise<MigrationReport> {
  const { migrationId } = await env.source.request('migrate', {
    vm,
    to: env.to,
    mode,
    params: { maxBandwidthBps: link.maxBandwidthBps, ...(objective ? { objective } : {}), ...extra },
    ...(await env.prepare(vm)),
  });
  return followMigration(env.source, migrationId, { progress: false });
}

/** Remove the VM wherever it is (a failed migration leaves it on the source). */
async function destroy(env: LinkEnv, vm: string, report: MigrationReport | null): Promise<void> {
  const order = report?.vmRunsOn === 'destination' ? [env.dest, env.source] : [env.source, env.dest];
  for (const client of order) {
    try {
      await client.request('destroy-vm', { vm });
    } catch {
      // Not on this side (or already gone): the other side is tried too.
    }
  }
}
