/**
 * Everything `livemig compare` writes beside its results.json, from the results alone:
 *
 *   DIR/results.csv              one row per cell (summary.ts)
 *   DIR/summary.md               what was run, the tables, prediction error, auto score (summary.ts)
 *   DIR/figures/<n>-<slug>.svg   each figure that had data (figures.ts, drawn by render-svg.ts)
 *   DIR/report.html              all of it on one standalone page
 *
 * report.html loads nothing: the figures are inline SVG, the styles inline, there is no script,
 * and its Content-Security-Policy forbids any fetch, so it opens the same from a laptop, a CI
 * artifact or a mail attachment. Every string that came from the results (names, error
 * messages) is escaped. A figure that could not be drawn is replaced by one line saying why;
 * partial results (an interrupted run, every cell failed) still give a complete report.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompareResults } from './results.ts';
import { compareFigures, type CompareFigure, type OmittedFigure } from './figures.ts';
import { renderSvg } from './render-svg.ts';
import { resultsCsv, summaryMarkdown, summarySections, type SummarySection, type SummaryTable } from './summary.ts';

/** A figure drawn: its SVG, where it was written (relative to DIR), and what Vega warned about. */
export interface DrawnFigure extends CompareFigure {
  svg: string;
  file: string;
  warnings: string[];
}

export type ReportFigure = DrawnFigure | OmittedFigure;

/** What `figures/` may hold from an earlier report: only such files are removed before writing. */
const FIGURE_FILE = /^\d+-[a-z0-9-]+\.svg$/;

/** Text (or an attribute value) as HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * An SVG to inline as figure `n`: ids (a clip path's, a gradient's) are given the figure's
 * prefix, as several inline SVGs share one document and ids must be unique in it.
 */
export function inlineSvg(svg: string, n: number): string {
  const prefix = `fig${n}-`;
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\sid="([^"]+)"/g, ` id="${prefix}$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}$1"`);
}

function tableHtml(table: SummaryTable): string {
  const cell = (tag: 'th' | 'td', text: string, i: number): string =>
    `<${tag}${table.numeric[i] ? ' class="num"' : ''}>${escapeHtml(text)}</${tag}>`;
  return [
    '<table>',
    `<caption>${escapeHtml(table.caption)}</caption>`,
    `<thead><tr>${table.header.map((h, i) => cell('th', h, i)).join('')}</tr></thead>`,
    '<tbody>',
    ...table.rows.map((row) => `<tr>${row.map((v, i) => cell('td', v, i)).join('')}</tr>`),
    '</tbody>',
    '</table>',
  ].join('\n');
}

function sectionHtml(section: SummarySection): string {
  return [
    '<section>',
    `<h2>${escapeHtml(section.title)}</h2>`,
    ...section.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    section.bullets.length === 0
      ? ''
      : `<ul>\n${section.bullets.map((b) => `<li>${escapeHtml(b)}</li>`).join('\n')}\n</ul>`,
    ...section.tables.map(tableHtml),
    '</section>',
  ]
    .filter((line) => line !== '')
    .join('\n');
}

function figureHtml(f: ReportFigure): string {
  const heading = `Figure ${f.n}. ${f.title}`;
  if (f.kind === 'omitted') {
    return `<p class="omitted" id="fig-${f.n}"><strong>${escapeHtml(heading)}</strong>: not drawn — ${escapeHtml(f.reason)}</p>`;
  }
  const warnings =
    f.warnings.length === 0 ? '' : `\n<p class="warn">Vega warned: ${escapeHtml(f.warnings.join('; '))}</p>`;
  return [
    `<figure id="fig-${f.n}">`,
    `<div class="chart">${inlineSvg(f.svg, f.n)}</div>`,
    `<figcaption><strong>${escapeHtml(heading)}.</strong> ${escapeHtml(f.caption)} ` +
      `<a href="${escapeHtml(f.file)}">SVG</a>${warnings}</figcaption>`,
    '</figure>',
  ].join('\n');
}

const STYLE = `
  body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0 auto;
         max-width: 1200px; padding: 1rem 2rem 3rem; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; }
  h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
  .meta { color: #555; }
  nav ol { columns: 2; }
  figure { margin: 2rem 0; }
  .chart { overflow-x: auto; }
  .chart svg { max-width: 100%; height: auto; }
  figcaption { color: #333; max-width: 80ch; font-size: .93rem; }
  table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
  caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
  th, td { border: 1px solid #ddd; padding: .25rem .6rem; vertical-align: top; }
  th { background: #f4f4f4; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  tbody tr:nth-child(even) { background: #fafafa; }
  .omitted { color: #8a5300; background: #fff7e6; border-left: 3px solid #f0a030; padding: .4rem .8rem; }
  .warn { color: #8a5300; }
  .interrupted { color: #a00; font-weight: 600; }
`;

/** report.html for `results` and its figures (drawn or omitted): one standalone HTML5 page. */
export function reportHtml(results: CompareResults, figures: readonly ReportFigure[]): string {
  const [whatWasRun, ...rest] = summarySections(results);
  const cells = results.cells.length;
  const done = results.cells.filter((c) => c.outcome === 'completed').length;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // No script, no fetch of any kind: the page is complete as it is.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>livemig compare, ${escapeHtml(results.startedAt)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<header>',
    '<h1>livemig compare</h1>',
    `<p class="meta">${escapeHtml(`${results.startedAt} to ${results.endedAt}: ${done} of ${cells} cells completed.`)} ` +
      'Files: <a href="results.json">results.json</a>, <a href="results.csv">results.csv</a>, ' +
      '<a href="summary.md">summary.md</a>.</p>',
    results.interrupted
      ? '<p class="interrupted">The run was interrupted: this report covers the cells done before it stopped.</p>'
      : '',
    '</header>',
    '<main>',
    whatWasRun === undefined ? '' : sectionHtml(whatWasRun),
    '<section>',
    '<h2>Figures</h2>',
    `<nav><ol>${figures.map((f) => `<li><a href="#fig-${f.n}">${escapeHtml(f.title)}</a>${f.kind === 'omitted' ? ' (not drawn)' : ''}</li>`).join('')}</ol></nav>`,
    ...figures.map(figureHtml),
    '</section>',
    ...rest.map(sectionHtml),
    '</main>',
    '</body>',
    '</html>',
    '',
  ]
    .filter((line) => line !== '')
    .join('\n');
}

/** Draw each figure; one that fails to draw becomes an omitted figure saying why (the rest still are). */
async function drawFigures(results: CompareResults): Promise<ReportFigure[]> {
  const drawn: ReportFigure[] = [];
  for (const f of compareFigures(results)) {
    if (f.kind === 'omitted') {
      drawn.push(f);
      continue;
    }
    try {
      const { svg, warnings } = await renderSvg(f.spec);
      drawn.push({ ...f, svg, warnings, file: `figures/${f.n}-${f.slug}.svg` });
    } catch (err) {
      drawn.push({
        kind: 'omitted',
        n: f.n,
        slug: f.slug,
        title: f.title,
        reason: `could not be drawn: ${(err as Error).message}`,
      });
    }
  }
  return drawn;
}

/**
 * Write results.csv, summary.md, figures/<n>-<slug>.svg and report.html into `dir` (created if
 * need be; results.json is the caller's). Figure files left by an earlier report in the same
 * directory are removed first, so figures/ matches report.html. Returns the paths written
 * (`dir` joined with each file's name), figures before report.html.
 */
export async function writeCompareReport(results: CompareResults, dir: string): Promise<string[]> {
  const figuresDir = join(dir, 'figures');
  await mkdir(figuresDir, { recursive: true });
  for (const name of await readdir(figuresDir)) {
    if (FIGURE_FILE.test(name)) await rm(join(figuresDir, name), { force: true });
  }
  const written: string[] = [];
  const write = async (name: string, text: string): Promise<void> => {
    const path = join(dir, name);
    await writeFile(path, text);
    written.push(path);
  };
  await write('results.csv', resultsCsv(results));
  await write('summary.md', summaryMarkdown(results));
  const figures = await drawFigures(results);
  for (const f of figures) if (f.kind === 'figure') await write(f.file, f.svg);
  await write('report.html', reportHtml(results, figures));
  return written;
}
