import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeHtml, inlineSvg, writeCompareReport } from '../../../../cli/compare/report-html.ts';
import { cellFixture, compareFixture, resultsOf } from '../../../helpers/compare-fixture.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'livemig-report-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('escapeHtml', () => {
  it('escapes the five characters that matter in text and attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;&#60;/a&#62;',
    );
  });
});

describe('inlineSvg', () => {
  it("prefixes a figure's ids and the references to them", () => {
    const svg = '<svg><clipPath id="clip1"><rect/></clipPath><g clip-path="url(#clip1)"><use href="#clip1"/></g></svg>';
    expect(inlineSvg(svg, 3)).toBe(
      '<svg><clipPath id="fig3-clip1"><rect/></clipPath><g clip-path="url(#fig3-clip1)"><use href="#fig3-clip1"/></g></svg>',
    );
  });
});

describe('writeCompareReport', () => {
  it('writes the CSV, the summary, each figure and report.html, and says so', async () => {
    const dir = join(root, 'full');
    const written = await writeCompareReport(compareFixture(), dir);
    expect(written.map((p) => p.slice(dir.length + 1))).toEqual([
      'results.csv',
      'summary.md',
      'figures/1-downtime-vs-dirty-rate.svg',
      'figures/2-total-time-vs-bandwidth.svg',
      'figures/3-bytes-vs-dirty-rate.svg',
      'figures/4-client-timeline.svg',
      'figures/5-postcopy-fault-latency.svg',
      'figures/6-guest-slowdown.svg',
      'figures/7-predicted-vs-measured.svg',
      'report.html',
    ]);
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(7);
    expect(html.match(/<figcaption>/g)).toHaveLength(7);
    expect(html).not.toMatch(/<script|<link |<iframe|<img /i);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain('<table>');
    expect(html).toContain('ERR_SWITCHOVER_TIMEOUT');
    const svg = await readFile(join(dir, 'figures/1-downtime-vs-dirty-rate.svg'), 'utf8');
    expect(svg).toMatch(/^<svg /);
  });

  it('escapes every string from the results in report.html', async () => {
    const evil = '<script>alert(1)</script>';
    const cells = compareFixture().cells.map((c) => ({
      ...c,
      spec: { ...c.spec, link: { ...c.spec.link, name: `${c.spec.link.name} ${evil}` }, id: `${c.spec.id}${evil}` },
      error: c.error === null ? null : { code: c.error.code, message: `${evil} & "quoted"` },
    }));
    const results = {
      ...compareFixture(),
      cells,
      skippedLinks: [{ name: evil, reason: `<img src=x onerror=alert(1)>` }],
    };
    const dir = join(root, 'evil');
    await writeCompareReport(results, dir);
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
  });

  it('writes a complete report for a run in which every cell failed, each figure replaced by its reason', async () => {
    const dir = join(root, 'failed');
    const written = await writeCompareReport(compareFixture({ allFailed: true }), dir);
    expect(written.map((p) => p.slice(dir.length + 1))).toEqual(['results.csv', 'summary.md', 'report.html']);
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html.match(/class="omitted"/g)).toHaveLength(7);
    expect(html).toContain('0 of 32 cells completed');
    expect(html).not.toContain('<svg');
  });

  it('writes a report for an interrupted run with no cells, and for one with a single cell', async () => {
    const empty = join(root, 'empty');
    await writeCompareReport({ ...compareFixture({ cells: 0 }) }, empty);
    const html = await readFile(join(empty, 'report.html'), 'utf8');
    expect(html).toContain('The run was interrupted');
    expect(html).toContain('No cell ran.');
    const one = join(root, 'one');
    await writeCompareReport(resultsOf([cellFixture({ technique: 'precopy', totalMs: 100, downtimeMs: 5 })]), one);
    expect(await readFile(join(one, 'summary.md'), 'utf8')).toContain('## Link l');
  });

  it('removes figure files an earlier report left, and only those', async () => {
    const dir = join(root, 'rerun');
    await mkdir(join(dir, 'figures'), { recursive: true });
    await writeFile(join(dir, 'figures', '9-old-figure.svg'), '<svg/>');
    await writeFile(join(dir, 'figures', 'notes.txt'), 'mine');
    await writeCompareReport(compareFixture({ probed: false }), dir);
    const names = await readdir(join(dir, 'figures'));
    expect(names).not.toContain('9-old-figure.svg');
    expect(names).not.toContain('4-client-timeline.svg');
    expect(names).toContain('notes.txt');
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html).toMatch(/Figure 4\. The client&#39;s view during a migration<\/strong>: not drawn — no probed cell/);
  });
});
