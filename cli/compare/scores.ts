/**
 * The two numbers `livemig compare` is judged by, computed from its results (pure):
 *
 * - the prediction error: how far the model's prediction of each completed cell's total time and
 *   downtime was from what the migration measured — the median of |predicted − measured| /
 *   measured over the cells that have both;
 * - the auto score: for each `auto:<objective>` of a workload and link, its measured objective
 *   against the fixed techniques (pre-copy, post-copy, hybrid) run on the same workload and link —
 *   never worse than the worst of them, and within 10 % of the best. A technique with engine
 *   options (precopy+compress, precopy+auto-converge, …) is not one of them: auto chooses a
 *   mode and runs the engine's defaults (compress auto, no deltas, references or throttle), so it
 *   is scored against what it could have chosen, not against options it was not given; those
 *   cells are in the tables and figures instead. With repeats, each side is
 *   the median over its repeats: two techniques that chose the same way differ by the run's noise
 *   alone (a few ms of an RTT on a shaped link), and a single pair of runs would score that noise.
 *
 * The summary (summary.ts), the benchmark and the tests share these definitions, so a number in
 * the report and a number a test asserts on are the same computation.
 */
import type { MigrationReport } from '@livemig/shared/report';
import { TECHNIQUES, type Objective, type Technique } from '@livemig/shared/predict';
import type { CellResult, TechniqueName } from './results.ts';

/** The median of `values` (the mean of the middle two when even), or null when there are none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * (predicted − measured) / measured, signed: +0.2 means the model said 20 % more than happened.
 * null when measured is not a positive finite number (a relative error of 0 ms means nothing).
 */
export function relativeError(predicted: number, measured: number | null | undefined): number | null {
  if (measured === null || measured === undefined || !Number.isFinite(measured) || measured <= 0) return null;
  if (!Number.isFinite(predicted)) return null;
  return (predicted - measured) / measured;
}

/** The prediction error of one quantity over the cells that had a prediction and a measurement. */
export interface ErrorStat {
  /** Cells counted: completed, with a prediction and a positive measurement. */
  cells: number;
  /** Median |relative error| (0.25 = 25 %), null when no cell counted. */
  medianAbs: number | null;
  /** Median signed relative error: > 0, the model over-predicts. null when no cell counted. */
  medianSigned: number | null;
  /** The largest |relative error|, null when no cell counted. */
  maxAbs: number | null;
}

export interface PredictionErrors {
  totalTime: ErrorStat;
  downtime: ErrorStat;
}

function errorStat(errors: readonly number[]): ErrorStat {
  const abs = errors.map(Math.abs);
  return {
    cells: errors.length,
    medianAbs: median(abs),
    medianSigned: median(errors),
    maxAbs: abs.length === 0 ? null : abs.reduce((a, b) => Math.max(a, b)),
  };
}

/** The cell's relative errors of total time, downtime and wire bytes, each null when not comparable. */
export function cellRelativeErrors(cell: CellResult): {
  totalTime: number | null;
  downtime: number | null;
  wireBytes: number | null;
} {
  const { predicted, report } = cell;
  if (cell.outcome !== 'completed' || predicted === null || report === null) {
    return { totalTime: null, downtime: null, wireBytes: null };
  }
  return {
    totalTime: relativeError(predicted.totalMs, report.times.totalMs),
    downtime: relativeError(predicted.downtimeMs, report.times.downtimeMs),
    wireBytes: relativeError(predicted.wireBytes, report.bytes.wire),
  };
}

/** The prediction error of total time and downtime over the completed cells with a prediction. */
export function predictionErrors(cells: readonly CellResult[]): PredictionErrors {
  const total: number[] = [];
  const downtime: number[] = [];
  for (const cell of cells) {
    const errors = cellRelativeErrors(cell);
    if (errors.totalTime !== null) total.push(errors.totalTime);
    if (errors.downtime !== null) downtime.push(errors.downtime);
  }
  return { totalTime: errorStat(total), downtime: errorStat(downtime) };
}

/** A fixed technique, or null for `auto:<objective>` and for a technique with options (not scored against: see the header). */
export function fixedTechnique(name: TechniqueName): Technique | null {
  return (TECHNIQUES as readonly string[]).includes(name) ? (name as Technique) : null;
}

/** The objective of an `auto:<objective>` technique, or null for a fixed one. */
export function autoObjective(name: TechniqueName): Objective | null {
  return name.startsWith('auto:') ? (name.slice('auto:'.length) as Objective) : null;
}

/**
 * What a completed migration measured on `objective`: its downtime, total time or bytes on the
 * wire. null when it did not complete or did not measure it (a downtime with no resume).
 */
export function objectiveValue(report: MigrationReport | null, objective: Objective): number | null {
  if (report === null || report.outcome !== 'completed') return null;
  const value =
    objective === 'downtime'
      ? report.times.downtimeMs
      : objective === 'total-time'
        ? report.times.totalMs
        : report.bytes.wire;
  return value !== null && Number.isFinite(value) ? value : null;
}

/** How much worse than the best fixed technique an auto cell may be and still count as "within". */
export const WITHIN_BEST_FACTOR = 1.1;

/** One auto objective against the fixed techniques of its workload and link (medians over repeats). */
export interface AutoComparison {
  /** The auto cells' id without the repeat, e.g. "wan/kv/auto:downtime". */
  cellId: string;
  objective: Objective;
  workload: string;
  link: string;
  /** Repeats of the auto cell that ran (its value is their median). */
  repeats: number;
  /** The technique auto chose (the most frequent over its repeats), when the cells say. */
  chose: Technique | null;
  /** Its measured objective (median over repeats); Infinity when it ran but did not complete. */
  auto: number;
  /**
   * The best and worst fixed technique, each its median over repeats; a fixed cell that ran but
   * failed counts as Infinity.
   */
  best: { technique: Technique; value: number };
  worst: { technique: Technique; value: number };
  /** auto ≤ worst. */
  neverWorse: boolean;
  /** auto ≤ 1.1 × best. */
  withinBest: boolean;
  /**
   * withinBest, or auto ≤ the slowest of the best technique's own repeats: at this run's
   * repeatability the two cannot be told apart (a 3 ms downtime's 10 % is 0.3 ms; the same idle
   * pre-copy measured 2.75–6.11 ms in three repeats). Needs ≥ 2 repeats of the best.
   */
  withinBestOrSpread: boolean;
}

export interface AutoScore {
  /** Auto objectives compared (each had at least one completed fixed technique to compare with). */
  compared: number;
  neverWorse: number;
  withinBest: number;
  withinBestOrSpread: number;
  /** Percentages of `compared` (0–100), null when nothing was compared. */
  neverWorsePct: number | null;
  withinBestPct: number | null;
  withinBestOrSpreadPct: number | null;
  comparisons: AutoComparison[];
  /** Auto cells that could not be compared, and why (not run, no fixed technique completed). */
  notCompared: { cellId: string; reason: string }[];
}

/** Cells that ran: a migration was attempted (not skipped, not an `error` before it could start). */
function ran(cell: CellResult): boolean {
  return cell.outcome === 'completed' || cell.outcome === 'failed' || cell.outcome === 'cancelled';
}

function groupKey(cell: CellResult): string {
  return JSON.stringify([cell.spec.workload.name, cell.spec.link.name]);
}

function chosenTechnique(cell: CellResult): Technique | null {
  // The choice is what auto was asked to do; the report's mode is what the engine then ran.
  return cell.choice?.technique ?? cell.predicted?.technique ?? cell.report?.mode ?? null;
}

/** The most frequent non-null value (the first seen on a tie), or null. */
function mostFrequent<T>(values: readonly (T | null)[]): T | null {
  const counts = new Map<T, number>();
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: T | null = null;
  for (const [v, n] of counts) if (best === null || n > counts.get(best)!) best = v;
  return best;
}

/**
 * Each `auto:<objective>` of a workload and link, its measured objective (median over the
 * repeats that ran) against each fixed technique's median on the same workload and link. A cell
 * (auto or fixed) that ran but did not complete counts as infinitely bad on every objective:
 * auto failing where a fixed technique completed is worse than it, and a fixed technique failing
 * makes "never worse than the worst" easy to meet, as it should. Cells that never ran (skipped,
 * error) are left out; an auto objective with no completed fixed technique beside it cannot be
 * scored and its cells are listed in `notCompared`.
 */
export function autoScore(cells: readonly CellResult[]): AutoScore {
  const fixedByGroup = new Map<string, Map<Technique, CellResult[]>>();
  const autoByGroup = new Map<string, CellResult[]>();
  const notCompared: AutoScore['notCompared'] = [];
  for (const cell of cells) {
    const technique = fixedTechnique(cell.spec.technique);
    const objective = autoObjective(cell.spec.technique);
    if (objective !== null && !ran(cell)) {
      notCompared.push({ cellId: cell.spec.id, reason: `not run (${cell.outcome})` });
      continue;
    }
    if (!ran(cell)) continue;
    if (technique !== null) {
      const group = fixedByGroup.get(groupKey(cell)) ?? new Map<Technique, CellResult[]>();
      fixedByGroup.set(groupKey(cell), group.set(technique, [...(group.get(technique) ?? []), cell]));
    } else if (objective !== null) {
      const key = JSON.stringify([groupKey(cell), cell.spec.technique]);
      autoByGroup.set(key, [...(autoByGroup.get(key) ?? []), cell]);
    }
  }
  const comparisons: AutoComparison[] = [];
  for (const autos of autoByGroup.values()) {
    const first = autos[0]!;
    const objective = autoObjective(first.spec.technique)!;
    const valueOf = (cell: CellResult): number => objectiveValue(cell.report, objective) ?? Infinity;
    const fixed = [...(fixedByGroup.get(groupKey(first)) ?? new Map<Technique, CellResult[]>())].map(
      ([technique, runs]) => ({ technique, value: median(runs.map(valueOf))!, runs: runs.map(valueOf) }),
    );
    const finite = fixed.filter((f) => Number.isFinite(f.value));
    if (finite.length === 0) {
      const reason =
        fixed.length === 0
          ? 'no fixed technique ran on the same workload and link'
          : 'no fixed technique completed on the same workload and link';
      notCompared.push(...autos.map((cell) => ({ cellId: cell.spec.id, reason })));
      continue;
    }
    const { runs: bestRuns, ...best } = finite.reduce((a, b) => (b.value < a.value ? b : a));
    const { runs: _worstRuns, ...worst } = fixed.reduce((a, b) => (b.value > a.value ? b : a));
    const auto = median(autos.map(valueOf))!;
    const withinBest = auto <= WITHIN_BEST_FACTOR * best.value;
    comparisons.push({
      cellId: [first.spec.link.name, first.spec.workload.name, first.spec.technique].join('/'),
      objective,
      workload: first.spec.workload.name,
      link: first.spec.link.name,
      repeats: autos.length,
      chose: mostFrequent(autos.map(chosenTechnique)),
      auto,
      best,
      worst,
      neverWorse: auto <= worst.value,
      withinBest,
      withinBestOrSpread: withinBest || (bestRuns.length >= 2 && auto <= Math.max(...bestRuns)),
    });
  }
  const compared = comparisons.length;
  const neverWorse = comparisons.filter((c) => c.neverWorse).length;
  const withinBest = comparisons.filter((c) => c.withinBest).length;
  const withinBestOrSpread = comparisons.filter((c) => c.withinBestOrSpread).length;
  const pct = (n: number): number | null => (compared === 0 ? null : (100 * n) / compared);
  return {
    compared,
    neverWorse,
    withinBest,
    neverWorsePct: pct(neverWorse),
    withinBestPct: pct(withinBest),
    withinBestOrSpread,
    withinBestOrSpreadPct: pct(withinBestOrSpread),
    comparisons,
    notCompared,
  };
}
