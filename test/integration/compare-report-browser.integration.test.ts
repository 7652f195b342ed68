/**
 * The compare report as a person sees it: report.html for the fixture run, opened in headless
 * Chromium from disk. Nothing on the page may fail (console errors, page errors), it may fetch
 * nothing beyond itself, every figure must be an SVG with data marks in it and a caption, and
 * a full-page screenshot is left in $LIVEMIG_ARTIFACTS (or <tmp>/livemig-artifacts) to look at.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeCompareReport } from '../../cli/compare/report-html.ts';
import { artifactsDir, describeWithBrowser, withBrowser } from '../helpers/browser.ts';
import { compareFixture } from '../helpers/compare-fixture.ts';

describeWithBrowser('compare report in a browser', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livemig-compare-report-'));
    await writeCompareReport(compareFixture(), dir);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('renders every figure with marks and a caption, without errors or fetches, and is screenshotted', async () => {
    const url = pathToFileURL(join(dir, 'report.html')).href;
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      const problems: string[] = [];
      const requested: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
      page.on('request', (r) => requested.push(r.url()));
      await page.setViewport({ width: 1280, height: 900 });
      const response = await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
      expect(response?.ok() ?? true).toBe(true);

      const figures = await page.$$eval('figure', (nodes) =>
        nodes.map((f) => {
          const svg = f.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          return {
            id: f.id,
            svg: svg !== null,
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            // Data marks only: vega puts axes, legends and titles in groups of other roles.
            marks: f.querySelectorAll('g.role-mark > path, g.role-mark > line, g.role-mark > rect').length,
            caption: f.querySelector('figcaption')?.textContent?.trim() ?? '',
          };
        }),
      );
      expect(figures.map((f) => f.id)).toEqual(['fig-1', 'fig-2', 'fig-3', 'fig-4', 'fig-5', 'fig-6', 'fig-7']);
      for (const f of figures) {
        expect(f.svg, f.id).toBe(true);
        expect(f.marks, `${f.id}: data marks`).toBeGreaterThan(0);
        expect(f.width, `${f.id}: width`).toBeGreaterThan(200);
        expect(f.height, `${f.id}: height`).toBeGreaterThan(100);
        expect(f.caption, f.id).toMatch(/^Figure \d\. .+ (Columns of results\.csv|From results\.json)/s);
      }
      const tables = await page.$$eval('table', (nodes) => nodes.length);
      expect(tables).toBeGreaterThan(3);

      expect(problems).toEqual([]);
      expect(requested).toEqual([url]);

      const artifacts = artifactsDir();
      await mkdir(artifacts, { recursive: true });
      const png = join(artifacts, 'compare-report.png');
      await page.screenshot({ path: png, fullPage: true });
      process.stdout.write(`[artifact] ${png}\n`);
      expect((await stat(png)).size).toBeGreaterThan(100_000);
    });
  });
});
