/**
 * The figures of `livemig compare`, as Vega-Lite specs built from its results (pure; rendered to
 * SVG by render-svg.ts, placed in the report by report-html.ts):
 *
 *   1 downtime vs dirty rate            4 the client's view over time, phases shaded (Clark et al.)
 *   2 total time vs link bandwidth      5 post-copy fault latency
 *   3 bytes on the wire vs dirty rate   6 guest slowdown: post-copy vs auto-converge/dirty-limit
 *                                       7 predicted vs measured
 *
 * Each figure's data is the rows it draws, inline in its spec (one row per cell, or per probe
 * sample, …), so a test can check the rows and the SVG needs nothing fetched. Medians over
 * repeats are computed by the spec's aggregate transforms, next to the points they summarise.
 * Each caption says what was run — the VM sizes and workloads, the links as measured before the
 * migrations (bandwidth, RTT), the repeats — and where the numbers come from (results.csv
 * columns, or the results.json fields that are not in the CSV). A figure with nothing to draw is
 * returned as omitted, with the reason, which the report shows in its place.
 */
import type { TopLevelSpec } from 'vega-lite';
import { formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { MigrationReport } from '@livemig/shared/report';
import type { CellResult, CompareResults, TechniqueName } from './results.ts';
import { median } from './scores.ts';
import { techniquesOf } from './summary.ts';

/** A figure to draw: its spec and caption. `n` and `slug` name its file (`figures/<n>-<slug>.svg`). */
export interface CompareFigure {
  kind: 'figure';
  n: number;
  slug: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

/** A figure with nothing to draw, and why (one line, shown in the report instead). */
export interface OmittedFigure {
  kind: 'omitted';
  n: number;
  slug: string;
  title: string;
  reason: string;
}

export type FigureResult = CompareFigure | OmittedFigure;

const MB = 1e6;
const MiB = 1 << 20;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const WIDTH = 340;
const HEIGHT = 220;

/**
 * One colour per technique, the same in every figure (Tableau 10, as Vega's default), so a
 * reader learns it once. Techniques with options (precopy+compress, precopy+auto-converge, …)
 * take the rest of Tableau 10 and then Tableau 20's, in the order the matrix names them.
 */
const TECHNIQUE_COLORS: Partial<Record<TechniqueName, string>> = {
  precopy: '#4c78a8',
  postcopy: '#f58518',
  hybrid: '#54a24b',
  'auto:downtime': '#b279a2',
  'auto:total-time': '#e45756',
  'auto:bytes': '#72b7b2',
};
const OPTION_COLORS = [
  '#eeca3b',
  '#9d755d',
  '#ff9da6',
  '#79706e',
  '#d67195',
  '#8cd17d',
  '#b6992d',
  '#499894',
  '#86bcb6',
  '#f1ce63',
];

/** The colours of `domain`, in order: a plain technique's own, the next option colour for any other. */
export function techniqueColors(domain: readonly TechniqueName[]): string[] {
  let next = 0;
  return domain.map((t) => TECHNIQUE_COLORS[t] ?? OPTION_COLORS[next++ % OPTION_COLORS.length]!);
}

/** Phases of a migration, shaded in the timeline, and their colours (none red: red is a request lost). */
const PHASE_COLORS: Record<PhaseKind, string> = {
  setup: '#bab0ac',
  'pre-copy': '#9ecae9',
  'stop-and-copy': '#c994c7',
  'post-copy': '#ffbf79',
};

const CONFIG = {
  font: 'sans-serif',
  view: { continuousWidth: WIDTH, continuousHeight: HEIGHT },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' as const },
};

function techniqueColor(results: CompareResults) {
  const domain = techniquesOf(results);
  return {
    field: 'technique',
    type: 'nominal' as const,
    title: 'technique',
    scale: { domain, range: techniqueColors(domain) },
  };
}

function completed(results: CompareResults): (CellResult & { report: MigrationReport })[] {
  return results.cells.filter(
    (c): c is CellResult & { report: MigrationReport } => c.outcome === 'completed' && c.report !== null,
  );
}

function omitted(n: number, slug: string, title: string, reason: string): OmittedFigure {
  return { kind: 'omitted', n, slug, title, reason };
}

function figure(n: number, slug: string, title: string, caption: string, spec: TopLevelSpec): CompareFigure {
  return { kind: 'figure', n, slug, title, caption, spec };
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** [min, max] of a non-empty list, by a loop: a probe's samples can outnumber what spreading into Math.min takes. */
function extent(values: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * What was run, for a caption: the VMs and workloads, the links as measured before the
 * migrations (median bandwidth and RTT of `cells`), the repeats.
 */
export function whatWasRun(results: CompareResults, cells: readonly CellResult[]): string {
  const workloads = unique(cells.map((c) => c.spec.workload.name)).map((name) => {
    const w = cells.find((c) => c.spec.workload.name === name)!.spec.workload;
    return `${name} (${formatBytes(w.memoryBytes)} VM, ${w.workload})`;
  });
  const links = unique(cells.map((c) => c.spec.link.name)).map((name) => {
    const measured = cells.filter((c) => c.spec.link.name === name).map((c) => c.measured.link);
    const bandwidth = median(measured.filter((l) => l !== null).map((l) => l.bandwidthBps));
    const rtt = median(measured.filter((l) => l !== null).map((l) => l.rttMs));
    return bandwidth === null || rtt === null
      ? `${name} (not measured)`
      : `${name} (${formatRate(bandwidth)}, RTT ${formatDuration(rtt)} as measured)`;
  });
  const repeats = results.matrix.repeat;
  return (
    `Workloads: ${workloads.join('; ')}. Links: ${links.join('; ')}. ` +
    `${repeats} repeat${repeats === 1 ? '' : 's'} of each cell; ${cells.length} cells drawn.`
  );
}

// ————————————————————————————————————————————— 1. downtime vs dirty rate

/** A completed cell as a point: what was measured before it and what it cost. */
export interface CellPoint {
  id: string;
  technique: TechniqueName;
  workload: string;
  link: string;
  repeat: number;
}

function point(cell: CellResult): CellPoint {
  const { id, technique, workload, link, repeat } = cell.spec;
  return { id, technique, workload: workload.name, link: link.name, repeat };
}

/** x through the medians of each technique's repeats: one line per technique (and `detail`). */
function medianLine(x: string, y: string, groupby: string[], encoding: object) {
  return {
    transform: [
      {
        aggregate: [
          { op: 'median' as const, field: x, as: x },
          { op: 'median' as const, field: y, as: y },
        ],
        groupby,
      },
    ],
    mark: { type: 'line' as const, point: { filled: false, size: 50 }, strokeWidth: 2 },
    encoding,
  };
}

export function downtimeVsDirtyRate(results: CompareResults): FigureResult {
  const n = 1;
  const slug = 'downtime-vs-dirty-rate';
  const title = 'Downtime vs dirty rate';
  // Log scale (downtimes span milliseconds to seconds): a downtime of 0 cannot be placed on it.
  const cells = completed(results).filter(
    (c) => c.measured.dirtyRate !== null && c.report.times.downtimeMs !== null && c.report.times.downtimeMs > 0,
  );
  if (cells.length === 0)
    return omitted(n, slug, title, 'no completed cell has both a measured dirty rate and a downtime');
  const rows = cells.map((c) => ({
    ...point(c),
    dirtyRateMBps: c.measured.dirtyRate!.dirtyRateMBps,
    downtimeMs: c.report.times.downtimeMs!,
  }));
  const x = { field: 'dirtyRateMBps', type: 'quantitative' as const, title: 'dirty rate at start (MB/s)' };
  const y = {
    field: 'downtimeMs',
    type: 'quantitative' as const,
    title: 'downtime (ms, log scale)',
    scale: { type: 'log' as const },
  };
  const color = techniqueColor(results);
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    data: { values: rows },
    facet: { field: 'link', type: 'nominal', title: 'link' },
    columns: 2,
    spec: {
      layer: [
        {
          mark: { type: 'point', filled: true, opacity: 0.45, size: 40 },
          encoding: { x, y, color, shape: { field: 'workload', type: 'nominal', title: 'workload' } },
        },
        medianLine('dirtyRateMBps', 'downtimeMs', ['technique', 'workload', 'link'], { x, y, color }),
      ],
    },
    config: CONFIG,
  };
  const caption =
    `Downtime (source pause → destination resume; log scale) against the dirty rate measured just before each ` +
    `migration, one panel per link; a dot per cell, a line per technique through the medians over repeats of each workload. ` +
    `${whatWasRun(results, cells)} Columns of results.csv: dirty_rate_MBps (x), downtime_ms (y), technique, workload, link.`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 2. total time vs link bandwidth

export function totalTimeVsBandwidth(results: CompareResults): FigureResult {
  const n = 2;
  const slug = 'total-time-vs-bandwidth';
  const title = 'Total migration time vs link bandwidth';
  const cells = completed(results).filter((c) => c.measured.link !== null && c.measured.link.bandwidthBps > 0);
  if (cells.length === 0) return omitted(n, slug, title, 'no completed cell has a measured link bandwidth');
  const rows = cells.map((c) => ({
    ...point(c),
    bandwidthMBps: c.measured.link!.bandwidthBps / MB,
    totalMs: c.report.times.totalMs,
  }));
  const x = {
    field: 'bandwidthMBps',
    type: 'quantitative' as const,
    title: 'link bandwidth as measured (MB/s)',
    scale: { type: 'log' as const },
  };
  const y = {
    field: 'totalMs',
    type: 'quantitative' as const,
    title: 'total migration time (ms, log scale)',
    scale: { type: 'log' as const },
  };
  const color = techniqueColor(results);
  const oneLink = unique(cells.map((c) => c.spec.link.name)).length === 1;
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    data: { values: rows },
    facet: { field: 'workload', type: 'nominal', title: 'workload' },
    columns: 2,
    spec: {
      layer: [
        { mark: { type: 'point', filled: true, opacity: 0.45, size: 40 }, encoding: { x, y, color } },
        medianLine('bandwidthMBps', 'totalMs', ['technique', 'workload', 'link'], { x, y, color }),
      ],
    },
    resolve: { scale: { y: 'independent' } },
    config: CONFIG,
  };
  const caption =
    `Total migration time against the link's bandwidth as measured before each migration (log scales), one panel ` +
    `per workload; a dot per cell, a line per technique through the medians over repeats on each link` +
    `${oneLink ? ' (one link only: each line is a single point)' : ''}. ${whatWasRun(results, cells)} ` +
    `Columns of results.csv: link_bandwidth_MBps (x), total_ms (y), technique, workload.`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 3. bytes on the wire vs dirty rate

export function bytesVsDirtyRate(results: CompareResults): FigureResult {
  const n = 3;
  const slug = 'bytes-vs-dirty-rate';
  const title = 'Bytes on the wire vs dirty rate';
  const cells = completed(results).filter((c) => c.measured.dirtyRate !== null);
  if (cells.length === 0) return omitted(n, slug, title, 'no completed cell has a measured dirty rate');
  const rows = cells.map((c) => ({
    ...point(c),
    dirtyRateMBps: c.measured.dirtyRate!.dirtyRateMBps,
    wireMiB: c.report.bytes.wire / MiB,
  }));
  // The reference: a migration that sent each page once would put about the guest's memory on the wire.
  const memory = unique(cells.map((c) => c.spec.workload.memoryBytes)).map((bytes) => ({
    wireMiB: bytes / MiB,
    label: `guest memory ${formatBytes(bytes)}`,
  }));
  const x = { field: 'dirtyRateMBps', type: 'quantitative' as const, title: 'dirty rate at start (MB/s)' };
  const y = { field: 'wireMiB', type: 'quantitative' as const, title: 'bytes on the wire (MiB)' };
  const color = techniqueColor(results);
  const shape = { field: 'link', type: 'nominal' as const, title: 'link' };
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    width: WIDTH * 1.5,
    height: HEIGHT * 1.3,
    layer: [
      {
        data: { values: memory },
        mark: { type: 'rule', strokeDash: [6, 4], color: '#555' },
        encoding: { y },
      },
      {
        data: { values: memory },
        // At the right end, where the points of a busy guest are above it rather than on it.
        mark: { type: 'text', align: 'right', dx: -4, dy: 9, color: '#555' },
        encoding: {
          y,
          x: { datum: Math.max(...rows.map((r) => r.dirtyRateMBps)), type: 'quantitative' },
          text: { field: 'label', type: 'nominal' },
        },
      },
      {
        data: { values: rows },
        mark: { type: 'point', filled: true, opacity: 0.45, size: 40 },
        encoding: { x, y, color, shape },
      },
      {
        data: { values: rows },
        ...medianLine('dirtyRateMBps', 'wireMiB', ['technique', 'workload', 'link'], {
          x,
          y,
          color,
          detail: [{ field: 'link', type: 'nominal' }],
          strokeDash: { field: 'link', type: 'nominal', title: 'link' },
        }),
      },
    ],
    config: CONFIG,
  };
  const caption =
    `Bytes the migration put on the wire (pages and headers) against the dirty rate measured just before it; ` +
    `a dot per cell, a line per technique and link through the medians over repeats of each workload; the dashed ` +
    `rule is the guest's memory size (${memory.map((m) => m.label.replace('guest memory ', '')).join(', ')}): what sending ` +
    `each page once costs. ${whatWasRun(results, cells)} Columns of results.csv: dirty_rate_MBps (x), wire_bytes (y), ` +
    `memory_bytes (rule), technique, link.`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 4. the client's view over time

export type PhaseKind = 'setup' | 'pre-copy' | 'stop-and-copy' | 'post-copy';

/** A phase of a migration on its timeline, ms since the migration started. */
export interface Phase {
  phase: string;
  kind: PhaseKind;
  startMs: number;
  endMs: number;
}

/**
 * The phases of a migration from its report, ms since times.startedAt: setup, each pre-copy
 * round (in order, from the end of setup), stop-and-copy (pause → pause + downtime) and
 * post-copy (resume → every page present). A phase the report has no times for is left out.
 */
export function migrationPhases(report: MigrationReport): Phase[] {
  const { times } = report;
  const phases: Phase[] = [{ phase: 'setup', kind: 'setup', startMs: 0, endMs: times.setupMs }];
  let at = times.setupMs;
  for (const round of report.rounds) {
    phases.push({ phase: `round ${round.index}`, kind: 'pre-copy', startMs: at, endMs: at + round.ms });
    at += round.ms;
  }
  const t0 = Date.parse(times.startedAt);
  if (times.pausedAt !== undefined && Number.isFinite(t0) && times.downtimeMs !== null) {
    const paused = times.pausedAt - t0;
    const resumed = paused + times.downtimeMs;
    phases.push({ phase: 'stop-and-copy', kind: 'stop-and-copy', startMs: paused, endMs: resumed });
    if (report.postcopy !== undefined) {
      phases.push({
        phase: 'post-copy',
        kind: 'post-copy',
        startMs: resumed,
        endMs: resumed + report.postcopy.postcopyMs,
      });
    }
  }
  return phases;
}

/** Throughput bins, ms. */
export const THROUGHPUT_BIN_MS = 50;
/** Latency points drawn per migration at most; beyond, the worst of each time slice is kept. */
export const MAX_LATENCY_POINTS = 2000;

/**
 * The client's replies per second in THROUGHPUT_BIN_MS bins (bin start, ms since t0), by when
 * each reply came. Only whole bins between the first and the last request are kept: a bin the
 * client was not yet (or no longer) sending in would show a drop that never happened.
 */
export function throughputBins(
  samples: readonly { sentAt: number; latencyMs: number | null }[],
  t0: number,
): { tMs: number; repliesPerSec: number }[] {
  if (samples.length === 0) return [];
  const [lo, hi] = extent(samples.map((s) => s.sentAt));
  const first = Math.ceil((lo - t0) / THROUGHPUT_BIN_MS);
  const end = Math.floor((hi - t0) / THROUGHPUT_BIN_MS);
  if (end <= first) return [];
  const counts = new Array<number>(end - first).fill(0);
  for (const s of samples) {
    if (s.latencyMs === null) continue;
    const bin = Math.floor((s.sentAt + s.latencyMs - t0) / THROUGHPUT_BIN_MS) - first;
    if (bin >= 0 && bin < counts.length) counts[bin]! += 1;
  }
  return counts.map((count, i) => ({
    tMs: (first + i) * THROUGHPUT_BIN_MS,
    repliesPerSec: count / (THROUGHPUT_BIN_MS / 1000),
  }));
}

/**
 * The requests never answered, as spans (ms since t0): each run of consecutive unanswered
 * requests, from the first one's sending to an interval after the last one's — one band per
 * outage, however many requests it swallowed.
 */
export function lostSpans(
  samples: readonly { sentAt: number; latencyMs: number | null }[],
  t0: number,
  intervalMs: number,
): { startMs: number; endMs: number; requests: number }[] {
  const spans: { startMs: number; endMs: number; requests: number }[] = [];
  let open: { startMs: number; endMs: number; requests: number } | null = null;
  for (const s of [...samples].sort((a, b) => a.sentAt - b.sentAt)) {
    if (s.latencyMs !== null) {
      open = null;
    } else if (open === null) {
      open = { startMs: s.sentAt - t0, endMs: s.sentAt - t0 + intervalMs, requests: 1 };
      spans.push(open);
    } else {
      open.endMs = s.sentAt - t0 + intervalMs;
      open.requests += 1;
    }
  }
  return spans;
}

/**
 * At most `max` points: all of them when few enough, else the slowest reply of each of `max`
 * equal time slices (a client's worst moments are what the figure is for).
 */
export function thinLatency(points: readonly { tMs: number; latencyMs: number }[], max = MAX_LATENCY_POINTS) {
  if (points.length <= max) return { points: [...points], thinned: false };
  const [lo, hi] = extent(points.map((p) => p.tMs));
  const width = (hi - lo) / max || 1;
  const worst = new Map<number, { tMs: number; latencyMs: number }>();
  for (const p of points) {
    const slice = Math.min(max - 1, Math.floor((p.tMs - lo) / width));
    const kept = worst.get(slice);
    if (kept === undefined || p.latencyMs > kept.latencyMs) worst.set(slice, p);
  }
  return { points: [...worst.values()].sort((a, b) => a.tMs - b.tMs), thinned: true };
}

/** The probed cell drawn for each technique: the first completed one, else the first at all. */
function timelineCells(results: CompareResults): (CellResult & { report: MigrationReport })[] {
  const probed = results.cells.filter(
    (c): c is CellResult & { report: MigrationReport } =>
      c.report !== null &&
      c.probe !== undefined &&
      c.probe.samples.length > 0 &&
      Number.isFinite(Date.parse(c.report.times.startedAt)),
  );
  return techniquesOf(results)
    .map((t) => {
      const mine = probed.filter((c) => c.spec.technique === t);
      return mine.find((c) => c.outcome === 'completed') ?? mine[0];
    })
    .filter((c) => c !== undefined);
}

export function clientTimeline(results: CompareResults): FigureResult {
  const n = 4;
  const slug = 'client-timeline';
  const title = "The client's view during a migration";
  const cells = timelineCells(results);
  if (cells.length === 0)
    return omitted(n, slug, title, 'no probed cell (no workload with a probe client) has probe samples and a report');
  const phaseColor = {
    field: 'kind',
    type: 'nominal' as const,
    title: 'phase',
    scale: { domain: Object.keys(PHASE_COLORS), range: Object.values(PHASE_COLORS) },
  };
  let thinnedAny = false;
  const blocks = cells.map((cell) => {
    const t0 = Date.parse(cell.report.times.startedAt);
    const samples = cell.probe!.samples;
    const thinned = thinLatency(
      samples.filter((s) => s.latencyMs !== null).map((s) => ({ tMs: s.sentAt - t0, latencyMs: s.latencyMs! })),
    );
    thinnedAny ||= thinned.thinned;
    const lost = lostSpans(samples, t0, cell.probe!.intervalMs);
    const phases = migrationPhases(cell.report);
    const x = { field: 'tMs', type: 'quantitative' as const, title: 'ms since the migration started' };
    const rects = {
      data: { values: phases },
      mark: { type: 'rect' as const, opacity: 0.35 },
      encoding: {
        x: { field: 'startMs', type: 'quantitative' as const, title: 'ms since the migration started' },
        x2: { field: 'endMs' },
        color: phaseColor,
      },
    };
    const label = `${cell.spec.technique}${cell.choice ? ` (chose ${cell.choice.technique})` : ''}: ${cell.spec.id}`;
    return {
      title: label,
      // Latency above throughput, on the same time axis, so a gap in one lines up with the other.
      resolve: { scale: { x: 'shared' as const } },
      vconcat: [
        {
          width: WIDTH * 2,
          height: HEIGHT * 0.8,
          layer: [
            rects,
            ...(lost.length === 0
              ? []
              : [
                  {
                    data: { values: lost },
                    mark: { type: 'rect' as const, color: '#d62728', opacity: 0.45 },
                    encoding: { x: { field: 'startMs', type: 'quantitative' as const }, x2: { field: 'endMs' } },
                  },
                ]),
            {
              data: { values: thinned.points },
              mark: { type: 'point' as const, filled: true, size: 8, color: '#333', aria: false },
              encoding: { x, y: { field: 'latencyMs', type: 'quantitative' as const, title: 'reply latency (ms)' } },
            },
          ],
        },
        {
          width: WIDTH * 2,
          height: HEIGHT * 0.6,
          layer: [
            rects,
            {
              data: { values: throughputBins(samples, t0) },
              mark: { type: 'line' as const, interpolate: 'step-after' as const, color: '#333', aria: false },
              encoding: {
                x,
                y: {
                  field: 'repliesPerSec',
                  type: 'quantitative' as const,
                  title: `replies/s (${THROUGHPUT_BIN_MS} ms bins)`,
                },
              },
            },
          ],
        },
      ],
    };
  });
  const spec: TopLevelSpec = { $schema: SCHEMA, title, vconcat: blocks, config: CONFIG };
  const interval = unique(cells.map((c) => c.probe!.intervalMs)).map((ms) => formatDuration(ms));
  const caption =
    `One migration per technique as the probe client saw it (a request every ${interval.join(' / ')}): reply ` +
    `latency of each request (top; red bands: requests never answered) and replies per second in ` +
    `${THROUGHPUT_BIN_MS} ms bins (bottom), time 0 = the migration's start; shaded: setup, each pre-copy round, ` +
    `stop-and-copy (pause → resume) and post-copy (resume → every page present), as in Clark et al.'s figures.` +
    `${thinnedAny ? ` Where a migration had more than ${MAX_LATENCY_POINTS} replies, the slowest of each time slice is drawn.` : ''} ` +
    `${whatWasRun(results, cells)} From results.json (not in results.csv): cells[].probe.samples, report.times ` +
    `(startedAt, setupMs, pausedAt, downtimeMs), report.rounds[].ms, report.postcopy.postcopyMs.`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 5. post-copy fault latency

/** The histogram post-copy reports are gaining (bucket i: [bucketsUs[i], 2 × bucketsUs[i]) µs). */
export interface FaultLatencyHistogram {
  bucketsUs: number[];
  counts: number[];
}

/** The report's fault-latency histogram when it has a well-formed one, else null (read defensively). */
export function faultHistogramOf(report: MigrationReport): FaultLatencyHistogram | null {
  const h = (report.postcopy as { faultLatencyHistogram?: unknown } | undefined)?.faultLatencyHistogram;
  if (typeof h !== 'object' || h === null) return null;
  const { bucketsUs, counts } = h as Partial<FaultLatencyHistogram>;
  const numbers = (xs: unknown): xs is number[] =>
    Array.isArray(xs) && xs.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!numbers(bucketsUs) || !numbers(counts) || bucketsUs.length !== counts.length || bucketsUs.length === 0)
    return null;
  return { bucketsUs, counts };
}

export function faultLatency(results: CompareResults): FigureResult {
  const n = 5;
  const slug = 'postcopy-fault-latency';
  const title = 'Post-copy fault latency';
  const faulted = completed(results).filter((c) => c.report.postcopy !== undefined && c.report.postcopy.faults > 0);
  const withHistogram = faulted.filter((c) => faultHistogramOf(c.report) !== null);
  const color = techniqueColor(results);
  if (withHistogram.length > 0) {
    // Summed per technique and bucket over the cells: the shape of the distribution, not one run's.
    const sums = new Map<string, { technique: TechniqueName; fromUs: number; toUs: number; count: number }>();
    for (const cell of withHistogram) {
      const h = faultHistogramOf(cell.report)!;
      h.bucketsUs.forEach((fromUs, i) => {
        const key = `${cell.spec.technique}\u0000${fromUs}`;
        const row = sums.get(key) ?? { technique: cell.spec.technique, fromUs, toUs: 2 * fromUs, count: 0 };
        row.count += h.counts[i] ?? 0;
        sums.set(key, row);
      });
    }
    const rows = [...sums.values()].filter((r) => r.fromUs > 0);
    const spec: TopLevelSpec = {
      $schema: SCHEMA,
      title,
      data: { values: rows },
      facet: { row: { field: 'technique', type: 'nominal', title: 'technique' } },
      spec: {
        width: WIDTH * 1.5,
        height: HEIGHT * 0.7,
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
        encoding: {
          x: { field: 'fromUs', type: 'quantitative', title: 'fault latency (µs, log scale)', scale: { type: 'log' } },
          x2: { field: 'toUs' },
          y: { field: 'count', type: 'quantitative', title: 'faults' },
          y2: { datum: 0 },
          color,
        },
      },
      resolve: { scale: { y: 'independent' } },
      config: CONFIG,
    };
    const without = faulted.length - withHistogram.length;
    const caption =
      `How long the vCPU waited for each absent page it touched after the switch (fault → page installed), as a ` +
      `histogram summed over the ${withHistogram.length} post-copy and hybrid cells that recorded one; bucket ` +
      `[a, 2a) µs.${without > 0 ? ` ${without} faulting cells have no histogram and are not counted.` : ''} ` +
      `${whatWasRun(results, withHistogram)} From results.json (not in results.csv): report.postcopy.faultLatencyHistogram.`;
    return figure(n, slug, title, caption, spec);
  }
  const stats = faulted.filter((c) => c.report.postcopy!.faultLatencyMs !== null);
  if (stats.length === 0) {
    return omitted(n, slug, title, 'no completed post-copy or hybrid cell recorded a fault latency');
  }
  const rows = stats.flatMap((c) => {
    const f = c.report.postcopy!.faultLatencyMs!;
    return (['p50', 'p99', 'max'] as const).map((stat) => ({ ...point(c), stat, ms: f[stat] }));
  });
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    data: { values: rows.filter((r) => r.ms > 0) },
    width: WIDTH * 1.5,
    mark: { type: 'tick', thickness: 2 },
    encoding: {
      x: { field: 'ms', type: 'quantitative', title: 'fault latency (ms, log scale)', scale: { type: 'log' } },
      y: { field: 'id', type: 'nominal', title: 'cell' },
      color: { field: 'stat', type: 'nominal', title: 'statistic', scale: { domain: ['p50', 'p99', 'max'] } },
    },
    config: CONFIG,
  };
  const caption =
    `How long the vCPU waited for an absent page after the switch (fault → page installed): no cell's report ` +
    `has a fault-latency histogram, so each cell's p50, p99 and max are drawn as rules instead. ` +
    `${whatWasRun(results, stats)} Columns of results.csv: fault_p50_ms, fault_p99_ms (max: results.json, report.postcopy.faultLatencyMs.max).`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 6. guest slowdown

/** Steps/s over the pre-copy rounds a report measured (rounds that ran under the throttle controller), or null. */
function precopyStepsPerSec(report: MigrationReport): number | null {
  const rounds = report.rounds.filter((r) => r.cpuThrottlePercent !== undefined && r.guestStepsPerSec !== undefined);
  const ms = rounds.reduce((a, r) => a + r.ms, 0);
  return ms > 0 ? rounds.reduce((a, r) => a + r.guestStepsPerSec! * r.ms, 0) / ms : null;
}

/**
 * Figure 6: what the migration cost the guest — its steps/s relative to the unmigrated VM —
 * where the report measures it: on the destination during post-copy (post-copy, hybrid: page
 * faults), and over the pre-copy rounds of a throttled migration (auto-converge, dirty-limit:
 * the throttle is the price of converging). Plain pre-copy runs the guest at full speed and is
 * the dashed rule at 1.
 */
export function guestSlowdown(results: CompareResults): FigureResult {
  const n = 6;
  const slug = 'guest-slowdown';
  const title = 'Guest slowdown during the migration';
  type Row = CellPoint & { phase: string; relative: number; baseline: string; label: string };
  const rows: Row[] = [];
  const drawnCells: CellResult[] = [];
  for (const c of completed(results)) {
    const p = c.report.postcopy;
    const t = c.report.throttle;
    let drew = false;
    const postBase = c.baselineStepsPerSec ?? p?.stepsPerSecBefore;
    if (p !== undefined && postBase !== undefined && postBase > 0 && Number.isFinite(p.stepsPerSecDuring)) {
      rows.push({
        ...point(c),
        phase: 'post-copy',
        relative: p.stepsPerSecDuring / postBase,
        baseline: c.baselineStepsPerSec !== undefined ? 'unmigrated VM' : 'source before the switch',
        label: c.spec.technique,
      });
      drew = true;
    }
    const during = precopyStepsPerSec(c.report);
    const preBase = c.baselineStepsPerSec ?? t?.unthrottledStepsPerSec ?? undefined;
    if (t !== undefined && during !== null && preBase !== undefined && preBase > 0) {
      rows.push({
        ...point(c),
        phase: `pre-copy, ${t.technique}`,
        relative: during / preBase,
        baseline: c.baselineStepsPerSec !== undefined ? 'unmigrated VM' : 'unthrottled rounds',
        label: c.spec.technique,
      });
      drew = true;
    }
    if (drew) drawnCells.push(c);
  }
  if (rows.length === 0) {
    return omitted(
      n,
      slug,
      title,
      'no completed cell measured the guest slowed down: post-copy and hybrid measure it after the switch, ' +
        'a throttled pre-copy (precopy+auto-converge, precopy+dirty-limit=RATE) over its rounds',
    );
  }
  // A technique measured in two phases (hybrid with a throttle) gets a bar for each.
  for (const row of rows) {
    if (new Set(rows.filter((r) => r.technique === row.technique).map((r) => r.phase)).size > 1) {
      row.label = `${row.technique} (${row.phase})`;
    }
  }
  const order = techniquesOf(results).flatMap((t) => unique(rows.filter((r) => r.technique === t).map((r) => r.label)));
  const x = {
    field: 'label',
    type: 'nominal' as const,
    title: 'technique',
    sort: order,
    axis: { labelAngle: order.some((l) => l.length > 12) ? -30 : 0 },
  };
  const y = { field: 'relative', type: 'quantitative' as const, title: 'guest steps/s, relative to unmigrated' };
  const color = techniqueColor(results);
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', opacity: 0.35 },
        // One bar per label (x) in its technique's colour: never stacked (a label has one technique).
        encoding: { x, y: { ...y, aggregate: 'median', stack: null }, color },
      },
      {
        data: { values: rows },
        mark: { type: 'point', filled: true, size: 40 },
        encoding: { x, y, color, shape: { field: 'link', type: 'nominal', title: 'link' } },
      },
      {
        data: { values: [{ relative: 1 }] },
        mark: { type: 'rule', strokeDash: [6, 4], color: '#555' },
        encoding: { y: { field: 'relative', type: 'quantitative' } },
      },
    ],
    config: CONFIG,
  };
  const baselines = unique(rows.map((r) => r.baseline));
  const throttled = rows.filter((r) => r.phase !== 'post-copy');
  const throttleWords =
    throttled.length > 0
      ? `Throttled pre-copy cells (${unique(throttled.map((r) => r.technique)).join(', ')}): steps/s over their ` +
        `pre-copy rounds, the price of converging. `
      : 'No cell ran a throttled pre-copy (give the matrix precopy+auto-converge or precopy+dirty-limit=RATE to ' +
        "compare its cost with post-copy's). ";
  const caption =
    `Guest steps per second relative to the ${baselines.join(' or ')} (dashed rule: 1 = no slowdown); a bar ` +
    `per technique at the median, a dot per cell. Post-copy and hybrid cells: steps/s on the destination ` +
    `during post-copy (the vCPU waits on faults). ${throttleWords}Plain pre-copy runs the guest at full speed ` +
    `and is not drawn. ${whatWasRun(results, drawnCells)} From results.json (not in results.csv): ` +
    `report.postcopy.stepsPerSecDuring, and Σ guestStepsPerSec × ms ÷ Σ ms over report.rounds with a ` +
    `cpuThrottlePercent, each ÷ baselineStepsPerSec (or report.postcopy.stepsPerSecBefore, ` +
    `report.throttle.unthrottledStepsPerSec).`;
  return figure(n, slug, title, caption, spec);
}

// ————————————————————————————————————————————— 7. predicted vs measured

export function predictedVsMeasured(results: CompareResults): FigureResult {
  const n = 7;
  const slug = 'predicted-vs-measured';
  const title = 'Predicted vs measured';
  const cells = completed(results).filter((c) => c.predicted !== null);
  const quantities = [
    {
      quantity: 'total time',
      measured: (c: CellResult & { report: MigrationReport }) => c.report.times.totalMs,
      predicted: (c: CellResult) => c.predicted!.totalMs,
    },
    {
      quantity: 'downtime',
      measured: (c: CellResult & { report: MigrationReport }) => c.report.times.downtimeMs,
      predicted: (c: CellResult) => c.predicted!.downtimeMs,
    },
  ];
  const color = techniqueColor(results);
  const panels = quantities
    .map(({ quantity, measured, predicted }) => {
      // Log scales: a zero or missing time cannot be placed on them.
      const rows = cells
        .map((c) => ({ ...point(c), quantity, measuredMs: measured(c), predictedMs: predicted(c) }))
        .filter(
          (r): r is typeof r & { measuredMs: number } => r.measuredMs !== null && r.measuredMs > 0 && r.predictedMs > 0,
        );
      return { quantity, rows };
    })
    .filter((p) => p.rows.length > 0);
  if (panels.length === 0) return omitted(n, slug, title, 'no completed cell has a prediction');
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    hconcat: panels.map(({ quantity, rows }) => {
      const all = rows.flatMap((r) => [r.measuredMs, r.predictedMs]);
      const lo = Math.min(...all) / 1.5;
      const hi = Math.max(...all) * 1.5;
      const scale = { type: 'log' as const, domain: [lo, hi] };
      return {
        title: quantity,
        width: WIDTH,
        height: WIDTH,
        layer: [
          {
            data: {
              values: [
                { measuredMs: lo, predictedMs: lo },
                { measuredMs: hi, predictedMs: hi },
              ],
            },
            mark: { type: 'line' as const, strokeDash: [6, 4], color: '#555' },
            encoding: {
              x: { field: 'measuredMs', type: 'quantitative' as const, scale },
              y: { field: 'predictedMs', type: 'quantitative' as const, scale },
            },
          },
          {
            data: { values: rows },
            mark: { type: 'point' as const, filled: true, size: 50, opacity: 0.7 },
            encoding: {
              x: { field: 'measuredMs', type: 'quantitative' as const, title: `measured ${quantity} (ms)`, scale },
              y: { field: 'predictedMs', type: 'quantitative' as const, title: `predicted ${quantity} (ms)`, scale },
              color,
              shape: { field: 'link', type: 'nominal' as const, title: 'link' },
            },
          },
        ],
      };
    }),
    config: CONFIG,
  };
  const drawn = cells.filter((c) => panels.some((p) => p.rows.some((r) => r.id === c.spec.id)));
  const caption =
    `The model's prediction, made before each migration from the measured dirty rate and link, against what the ` +
    `migration measured (log scales; dashed: y = x, a perfect prediction); a dot per completed cell with a ` +
    `prediction (auto: the prediction of the technique it chose). ${whatWasRun(results, drawn)} Columns of ` +
    `results.csv: total_ms and predicted_total_ms, downtime_ms and predicted_downtime_ms (and their *_rel_error).`;
  return figure(n, slug, title, caption, spec);
}

/** Every figure, in order, each drawn or omitted with its reason. */
export function compareFigures(results: CompareResults): FigureResult[] {
  return [
    downtimeVsDirtyRate(results),
    totalTimeVsBandwidth(results),
    bytesVsDirtyRate(results),
    clientTimeline(results),
    faultLatency(results),
    guestSlowdown(results),
    predictedVsMeasured(results),
  ];
}
