/**
 * The tables of `livemig compare` (pure): results.csv, one row per cell, for whoever wants the
 * numbers; and the human summary — what was run, per link a technique × workload table of the
 * medians over repeats, the prediction error, the auto score and the failed cells.
 *
 * The summary is built once as plain-text sections (`summarySections`) and rendered twice: as
 * Markdown here (summary.md) and as HTML by report-html.ts, so the two cannot say different
 * things. Every string in a section is plain text; each renderer escapes it for its format.
 */
import { formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { Objective } from '@livemig/shared/predict';
import type { CellResult, CompareResults, LinkCase, TechniqueName, WorkloadCase } from './results.ts';
import { autoScore, cellRelativeErrors, median, predictionErrors, type ErrorStat } from './scores.ts';

// ————————————————————————————————————————————— CSV

/** A number for the CSV: rounded to `digits` decimals, '' when absent or not finite. */
function num(value: number | null | undefined, digits: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '';
  return String(Number(value.toFixed(digits)));
}

/** One CSV column: its header and how a cell fills it. */
interface CsvColumn {
  header: string;
  value: (cell: CellResult) => string;
}

const MB = 1e6;

/**
 * results.csv's columns, in order. Units are in the names (MB = 10^6 bytes). Empty means "not
 * measured here": a failed cell has no times, an unprobed one no network downtime.
 */
export const CSV_COLUMNS: readonly CsvColumn[] = [
  { header: 'id', value: (c) => c.spec.id },
  { header: 'technique', value: (c) => c.spec.technique },
  { header: 'workload', value: (c) => c.spec.workload.name },
  { header: 'workload_spec', value: (c) => c.spec.workload.workload },
  { header: 'memory_bytes', value: (c) => num(c.spec.workload.memoryBytes, 0) },
  { header: 'link', value: (c) => c.spec.link.name },
  { header: 'repeat', value: (c) => num(c.spec.repeat, 0) },
  { header: 'outcome', value: (c) => c.outcome },
  { header: 'error_code', value: (c) => (c.error ?? c.report?.error)?.code ?? '' },
  { header: 'error_message', value: (c) => (c.error ?? c.report?.error)?.message ?? '' },
  { header: 'chosen_technique', value: (c) => c.choice?.technique ?? '' },
  { header: 'dirty_rate_MBps', value: (c) => num(c.measured.dirtyRate?.dirtyRateMBps, 3) },
  { header: 'link_bandwidth_MBps', value: (c) => num(bandwidthMBps(c), 3) },
  { header: 'link_rtt_ms', value: (c) => num(c.measured.link?.rttMs, 3) },
  { header: 'total_ms', value: (c) => num(c.report?.times.totalMs, 3) },
  { header: 'downtime_ms', value: (c) => num(c.report?.times.downtimeMs, 3) },
  { header: 'wire_bytes', value: (c) => num(c.report?.bytes.wire, 0) },
  { header: 'rounds', value: (c) => (c.report === null ? '' : num(c.report.rounds.length, 0)) },
  { header: 'switchover_reason', value: (c) => c.report?.switchover?.reason ?? '' },
  { header: 'predicted_technique', value: (c) => c.predicted?.technique ?? '' },
  { header: 'predicted_total_ms', value: (c) => num(c.predicted?.totalMs, 3) },
  { header: 'predicted_downtime_ms', value: (c) => num(c.predicted?.downtimeMs, 3) },
  { header: 'predicted_wire_bytes', value: (c) => num(c.predicted?.wireBytes, 0) },
  { header: 'total_rel_error', value: (c) => num(cellRelativeErrors(c).totalTime, 4) },
  { header: 'downtime_rel_error', value: (c) => num(cellRelativeErrors(c).downtime, 4) },
  { header: 'bytes_rel_error', value: (c) => num(cellRelativeErrors(c).wireBytes, 4) },
  { header: 'network_downtime_ms', value: (c) => num(c.report?.network?.downtimeMs, 3) },
  { header: 'switchover_gap_ms', value: (c) => num(c.report?.network?.switchoverGapMs, 3) },
  { header: 'fault_p50_ms', value: (c) => num(c.report?.postcopy?.faultLatencyMs?.p50, 3) },
  { header: 'fault_p99_ms', value: (c) => num(c.report?.postcopy?.faultLatencyMs?.p99, 3) },
  // Issue 17: what a throttle cost and what compression did, measured and predicted.
  { header: 'throttle_peak_percent', value: (c) => num(c.report?.throttle?.peakPercent, 2) },
  { header: 'guest_speed_precopy', value: (c) => num(c.report?.throttle?.speedDuringPrecopy, 4) },
  { header: 'predicted_guest_speed', value: (c) => num(c.predicted?.throttle?.guestSpeed, 4) },
  { header: 'compression_ratio', value: (c) => num(compressionRatio(c), 4) },
  { header: 'predicted_compression', value: (c) => c.predicted?.compression?.codec ?? '' },
];

/** The compressed blocks' output ÷ input in the cell's report, or null when nothing was compressed. */
function compressionRatio(cell: CellResult): number | null {
  const c = cell.report?.encodings?.compression;
  return c && c.inputBytes > 0 ? c.outputBytes / c.inputBytes : null;
}

function bandwidthMBps(cell: CellResult): number | null {
  const bps = cell.measured.link?.bandwidthBps;
  return bps === undefined ? null : bps / MB;
}

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, a quote, a line break or leading or
 * trailing space, with quotes doubled; as it is otherwise.
 */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * results.csv: a header and one row per cell, in the results' order. Lines end in "\n" (what
 * spreadsheets, pandas and R all read; RFC 4180's CRLF is only needed by strict parsers), and a
 * quoted field may hold a line break of its own (an error message's).
 */
export function resultsCsv(results: CompareResults): string {
  const lines = [CSV_COLUMNS.map((c) => csvField(c.header)).join(',')];
  for (const cell of results.cells) lines.push(CSV_COLUMNS.map((c) => csvField(c.value(cell))).join(','));
  return lines.join('\n') + '\n';
}

// ————————————————————————————————————————————— the summary, as plain-text sections

/** A table of plain text; `numeric` columns are right-aligned. */
export interface SummaryTable {
  caption: string;
  header: string[];
  rows: string[][];
  numeric: boolean[];
}

/** A heading, paragraphs, a bullet list and tables — all plain text, escaped by the renderer. */
export interface SummarySection {
  title: string;
  paragraphs: string[];
  bullets: string[];
  tables: SummaryTable[];
}

function section(title: string, parts: Partial<Omit<SummarySection, 'title'>> = {}): SummarySection {
  return { title, paragraphs: parts.paragraphs ?? [], bullets: parts.bullets ?? [], tables: parts.tables ?? [] };
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)} %`;
}

function signedPercent(fraction: number): string {
  return `${fraction >= 0 ? '+' : '−'}${percent(Math.abs(fraction))}`;
}

/** "64.0 MiB hotset:wss=16MiB,rate=20000 (random), probed every 1 ms". */
export function describeWorkload(w: WorkloadCase): string {
  const probed = w.probeIntervalMs === undefined ? '' : `, probed every ${formatDuration(w.probeIntervalMs)}`;
  return `${w.name}: ${formatBytes(w.memoryBytes)} VM, ${w.workload} (${w.init} memory)${probed}`;
}

/** "loopback, capped at 12.5 MB/s" / "lab profile wan, uncapped". */
export function describeLinkCase(link: LinkCase): string {
  const kind = link.kind === 'lab' ? `lab profile ${link.profile ?? link.name}` : 'loopback';
  const cap = link.maxBandwidthBps === null ? ', uncapped' : `, capped at ${formatRate(link.maxBandwidthBps)}`;
  return `${kind}${cap}`;
}

/**
 * The link as measured over `cells` (the median of their measurements before each migration):
 * "1.20 GB/s, RTT 0.08 ms", or "not measured".
 */
export function describeMeasuredLink(cells: readonly CellResult[]): string {
  const links = cells.map((c) => c.measured.link).filter((l) => l !== null);
  const bandwidth = median(links.map((l) => l.bandwidthBps));
  const rtt = median(links.map((l) => l.rttMs));
  if (bandwidth === null || rtt === null) return 'not measured';
  return `${formatRate(bandwidth)}, RTT ${formatDuration(rtt)}`;
}

/** Names in first-seen order: the matrix's, then any only the cells name (a partial run's). */
function ordered<T>(fromMatrix: readonly T[], fromCells: readonly T[]): T[] {
  return [...new Set([...fromMatrix, ...fromCells])];
}

/** The links with cells, in matrix order, with the cells of each. */
export function cellsByLink(results: CompareResults): { link: LinkCase; cells: CellResult[] }[] {
  const names = ordered(
    results.matrix.links.map((l) => l.name),
    results.cells.map((c) => c.spec.link.name),
  );
  return names
    .map((name) => ({
      link:
        results.matrix.links.find((l) => l.name === name) ??
        results.cells.find((c) => c.spec.link.name === name)!.spec.link,
      cells: results.cells.filter((c) => c.spec.link.name === name),
    }))
    .filter((g) => g.cells.length > 0);
}

/** Techniques and workloads in matrix order (plus any only the cells name). */
export function techniquesOf(results: CompareResults): TechniqueName[] {
  return ordered(
    results.matrix.techniques,
    results.cells.map((c) => c.spec.technique),
  );
}

export function workloadsOf(results: CompareResults): string[] {
  return ordered(
    results.matrix.workloads.map((w) => w.name),
    results.cells.map((c) => c.spec.workload.name),
  );
}

function countOutcomes(cells: readonly CellResult[]): string {
  const counts = new Map<string, number>();
  for (const cell of cells) counts.set(cell.outcome, (counts.get(cell.outcome) ?? 0) + 1);
  return [...counts].map(([outcome, n]) => `${n} ${outcome}`).join(', ') || 'none';
}

function whatWasRun(results: CompareResults): SummarySection {
  const { host, matrix } = results;
  const paragraphs = [
    `Run from ${results.startedAt} to ${results.endedAt} on a host with ${host.cpus} CPUs, Node ${host.node}, ` +
      `${host.root ? 'as root' : 'not as root'}.`,
  ];
  if (results.interrupted) {
    paragraphs.push('The run was interrupted (Ctrl-C): only the cells done before it stopped are here.');
  }
  const bullets = [
    `Techniques: ${matrix.techniques.join(', ') || 'none'}.`,
    ...matrix.workloads.map((w) => `Workload ${describeWorkload(w)}.`),
    ...matrix.links.map((l) => `Link ${l.name}: ${describeLinkCase(l)}.`),
    `Repeats: ${matrix.repeat}.`,
    `Cells: ${results.cells.length} (${countOutcomes(results.cells)}).`,
    ...results.skippedLinks.map((s) => `Skipped link ${s.name}: ${s.reason}`),
  ];
  return section('What was run', { paragraphs, bullets });
}

/** The median of `value` over the completed repeats, with "(k of n completed)" when some failed. */
function medianCell(
  cells: readonly CellResult[],
  value: (c: CellResult) => number | null,
  format: (v: number) => string,
): string {
  if (cells.length === 0) return '';
  const values = cells
    .filter((c) => c.outcome === 'completed')
    .map(value)
    .filter((v): v is number => v !== null && Number.isFinite(v));
  const m = median(values);
  const shown = m === null ? '—' : format(m);
  return values.length < cells.length ? `${shown} (${values.length} of ${cells.length})` : shown;
}

const MEDIAN_TABLES: { caption: string; value: (c: CellResult) => number | null; format: (v: number) => string }[] = [
  { caption: 'total migration time', value: (c) => c.report?.times.totalMs ?? null, format: formatDuration },
  { caption: 'downtime', value: (c) => c.report?.times.downtimeMs ?? null, format: formatDuration },
  { caption: 'bytes on the wire', value: (c) => c.report?.bytes.wire ?? null, format: formatBytes },
];

function linkSections(results: CompareResults): SummarySection[] {
  const techniques = techniquesOf(results);
  const workloads = workloadsOf(results);
  return cellsByLink(results).map(({ link, cells }) => {
    const tables = MEDIAN_TABLES.map(({ caption, value, format }) => ({
      caption: `${caption}, median over repeats (technique × workload)`,
      header: ['technique', ...workloads],
      numeric: [false, ...workloads.map(() => true)],
      rows: techniques
        .filter((t) => cells.some((c) => c.spec.technique === t))
        .map((t) => [
          t,
          ...workloads.map((w) =>
            medianCell(
              cells.filter((c) => c.spec.technique === t && c.spec.workload.name === w),
              value,
              format,
            ),
          ),
        ]),
    }));
    return section(`Link ${link.name}`, {
      paragraphs: [
        `${describeLinkCase(link)}; measured before each migration: ${describeMeasuredLink(cells)} (median). ` +
          `A figure "(k of n)" is the median of the k repeats that completed out of n.`,
      ],
      tables,
    });
  });
}

function describeErrorStat(what: string, stat: ErrorStat): string {
  if (stat.cells === 0 || stat.medianAbs === null || stat.medianSigned === null || stat.maxAbs === null) {
    return `${what}: no completed cell with a prediction to compare.`;
  }
  const bias = stat.medianSigned >= 0 ? 'over-predicts' : 'under-predicts';
  return (
    `${what}: median |relative error| ${percent(stat.medianAbs)} over ${stat.cells} completed cells with a prediction ` +
    `(median signed ${signedPercent(stat.medianSigned)}: the model ${bias}; the worst ${percent(stat.maxAbs)}).`
  );
}

function predictionSection(results: CompareResults): SummarySection {
  const errors = predictionErrors(results.cells);
  return section('Prediction error', {
    paragraphs: [
      'Relative error = (predicted − measured) / measured, per completed cell with a prediction ' +
        '(auto cells: the prediction of the technique they chose).',
    ],
    bullets: [describeErrorStat('Total time', errors.totalTime), describeErrorStat('Downtime', errors.downtime)],
  });
}

function formatObjective(objective: Objective, value: number): string {
  if (!Number.isFinite(value)) return 'did not complete';
  return objective === 'bytes' ? formatBytes(value) : formatDuration(value);
}

function autoSection(results: CompareResults): SummarySection {
  const score = autoScore(results.cells);
  if (score.compared === 0 && score.notCompared.length === 0) {
    return section('Auto', { paragraphs: ['No auto cells in this run.'] });
  }
  const fraction = (n: number, pct: number | null): string =>
    `${n} of ${score.compared}${pct === null ? '' : ` (${pct.toFixed(0)} %)`}`;
  const mark = (ok: boolean): string => (ok ? 'yes' : 'NO');
  return section('Auto', {
    paragraphs: [
      'Each auto:<objective>, measured on its objective against the fixed techniques (precopy, postcopy, ' +
        'hybrid) of the same workload and link, each side the median over its repeats (with one repeat, ' +
        'two techniques that chose alike differ by noise alone). A cell that ran and failed counts as the worst. ' +
        'Techniques with engine options (precopy+compress, precopy+auto-converge, …) are not counted: auto ' +
        "chooses a mode and runs the engine's defaults, so it is judged against what it could have chosen.",
    ],
    bullets: [
      `Never worse than the worst fixed technique: ${fraction(score.neverWorse, score.neverWorsePct)}.`,
      `Within 10 % of the best fixed technique: ${fraction(score.withinBest, score.withinBestPct)}.`,
      `Within 10 % of the best, or within the spread of the best's own repeats (as close as this run can tell): ${fraction(
        score.withinBestOrSpread,
        score.withinBestOrSpreadPct,
      )}.`,
      ...score.notCompared.map((n) => `Not scored: ${n.cellId}: ${n.reason}.`),
    ],
    tables:
      score.comparisons.length === 0
        ? []
        : [
            {
              caption: 'auto cells against the fixed techniques',
              header: [
                'cells',
                'objective',
                'chose',
                'auto',
                'best fixed',
                'worst fixed',
                'never worse',
                'within 10 %',
                'or its spread',
              ],
              numeric: [false, false, false, true, true, true, false, false, false],
              rows: score.comparisons.map((c) => [
                c.repeats === 1 ? c.cellId : `${c.cellId} (${c.repeats} repeats)`,
                c.objective,
                c.chose ?? '?',
                formatObjective(c.objective, c.auto),
                `${formatObjective(c.objective, c.best.value)} (${c.best.technique})`,
                `${formatObjective(c.objective, c.worst.value)} (${c.worst.technique})`,
                mark(c.neverWorse),
                mark(c.withinBest),
                mark(c.withinBestOrSpread),
              ]),
            },
          ],
  });
}

function failedSection(results: CompareResults): SummarySection {
  const failed = results.cells.filter((c) => c.outcome !== 'completed');
  if (failed.length === 0) {
    return section('Cells that did not complete', {
      paragraphs: [results.cells.length === 0 ? 'No cell ran.' : 'Every cell completed.'],
    });
  }
  return section('Cells that did not complete', {
    tables: [
      {
        caption: `${failed.length} of ${results.cells.length} cells`,
        header: ['cell', 'outcome', 'error', 'message'],
        numeric: [false, false, false, false],
        rows: failed.map((c) => {
          const error = c.error ?? c.report?.error ?? null;
          return [c.spec.id, c.outcome, error?.code ?? '', error?.message ?? ''];
        }),
      },
    ],
  });
}

/** The summary as sections: what was run, a section per link, prediction error, auto, failures. */
export function summarySections(results: CompareResults): SummarySection[] {
  return [
    whatWasRun(results),
    ...linkSections(results),
    predictionSection(results),
    autoSection(results),
    failedSection(results),
  ];
}

// ————————————————————————————————————————————— Markdown

/**
 * Plain text as Markdown text (one line): what Markdown would act on is backslash-escaped —
 * emphasis, code, links, HTML, table pipes, a leading heading mark — but not an underscore
 * inside a word (ERR_TIMEOUT), which CommonMark leaves alone and a reader of the raw file
 * would rather see bare.
 */
export function markdownText(text: string): string {
  return text
    .replace(/\r?\n/g, ' ')
    .replace(/[\\`*[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, '\\$&')
    .replace(/^#/, '\\#');
}

function markdownTable(table: SummaryTable): string[] {
  const row = (cells: readonly string[]): string => `| ${cells.map(markdownText).join(' | ')} |`;
  return [
    `**${markdownText(table.caption)}**`,
    '',
    row(table.header),
    `|${table.numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`,
    ...table.rows.map(row),
    '',
  ];
}

/** summary.md: the summary sections as Markdown. */
export function summaryMarkdown(results: CompareResults): string {
  const lines = ['# livemig compare: summary', ''];
  for (const s of summarySections(results)) {
    lines.push(`## ${markdownText(s.title)}`, '');
    for (const p of s.paragraphs) lines.push(markdownText(p), '');
    if (s.bullets.length > 0) lines.push(...s.bullets.map((b) => `- ${markdownText(b)}`), '');
    for (const t of s.tables) lines.push(...markdownTable(t));
  }
  return lines.join('\n').replace(/\n+$/, '\n');
}
