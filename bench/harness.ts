/**
 * The benchmark contract. Each `bench/<id>.bench.ts` default-exports a BenchSection; `npm run
 * bench [-- id …]` runs them, writes `bench/results/<id>.json`, and rebuilds BENCHMARKS.md from
 * every results file (so running one section refreshes only that section).
 *
 * Machines are shared and noisy, so a figure is reported next to a baseline measured in the same
 * run (e.g. a plain memory copy of the same bytes, a raw socket sending the same bytes) and as
 * a ratio to it. Goals are shown as met / not met; nothing here fails a build.
 */

/** One measured figure. */
export interface BenchRow {
  /** What was measured, e.g. "harvest 1 GiB, clean". */
  name: string;
  value: number;
  /** e.g. "ms", "MB/s", "pages/s". */
  unit: string;
  /** The figure it is compared with, measured in the same run. */
  baseline?: { name: string; value: number; unit: string };
  /** value / baseline.value, when a baseline is given. */
  ratio?: number;
  /** The goal, in words, e.g. "≥ 0.9× raw" or "< 1 ms". */
  goal?: string;
  /** Whether this run met the goal. */
  met?: boolean;
}

export interface BenchResult {
  rows: BenchRow[];
  /** How it was measured, what the figures mean, caveats. */
  notes?: string[];
}

export interface BenchSection {
  /** File-safe id, e.g. "vm". */
  id: string;
  title: string;
  /** Shown under the title: the command and what the section is about. */
  description: string;
  run(): Promise<BenchResult>;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A row compared with a baseline: fills in ratio and, given a minimum ratio, the goal. */
export function ratioRow(
  row: Omit<BenchRow, 'ratio' | 'baseline' | 'met'>,
  baseline: NonNullable<BenchRow['baseline']>,
  minRatio?: number,
): BenchRow {
  const ratio = row.value / baseline.value;
  return {
    ...row,
    baseline,
    ratio,
    ...(minRatio === undefined ? {} : { goal: row.goal ?? `≥ ${minRatio}× baseline`, met: ratio >= minRatio }),
  };
}
