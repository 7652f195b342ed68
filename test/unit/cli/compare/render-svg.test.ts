import { describe, expect, it } from 'vitest';
import { compareFigures } from '../../../../cli/compare/figures.ts';
import { renderSvg } from '../../../../cli/compare/render-svg.ts';
import { compareFixture } from '../../../helpers/compare-fixture.ts';

/** Data marks (not axes, legends or titles): vega puts each mark's items in a `role-mark` group. */
function markItems(svg: string, kind: string): number {
  const groups = [...svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>(.*?)</g>`, 'gs'))];
  return groups.reduce((sum, g) => sum + (g[1]!.match(/<(path|line|rect|text)\b/g)?.length ?? 0), 0);
}

describe('renderSvg', () => {
  it('draws a point per row and a line through them, with no warnings', async () => {
    const { svg, warnings } = await renderSvg({
      data: {
        values: [
          { x: 1, y: 2 },
          { x: 2, y: 4 },
          { x: 3, y: 3 },
        ],
      },
      layer: [
        {
          mark: 'point',
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
        },
        {
          mark: 'line',
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
        },
      ],
    });
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(markItems(svg, 'symbol')).toBe(3);
    expect(markItems(svg, 'line')).toBe(1);
    expect(warnings).toEqual([]);
  });

  it('escapes text from the data', async () => {
    const { svg } = await renderSvg({
      data: { values: [{ name: '<script>alert(1)</script>', v: 1 }] },
      mark: 'bar',
      encoding: { x: { field: 'name', type: 'nominal' }, y: { field: 'v', type: 'quantitative' } },
    });
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&lt;script&gt;');
  });

  it('refuses a spec that would load data from a URL', async () => {
    await expect(
      renderSvg({
        data: { url: 'http://127.0.0.1:9/data.json' },
        mark: 'point',
        encoding: { x: { field: 'a', type: 'quantitative' } },
      }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('inline data only') });
  });

  it('collects warnings instead of printing them', async () => {
    const { warnings } = await renderSvg({
      data: { values: [{ x: 0, y: 1 }] },
      mark: 'point',
      encoding: {
        x: { field: 'x', type: 'quantitative', scale: { type: 'log' } },
        y: { field: 'y', type: 'quantitative' },
      },
    });
    expect(warnings.length).toBeGreaterThan(0);
  });

  it('draws every figure of the fixture with data marks and without a warning', async () => {
    for (const f of compareFigures(compareFixture())) {
      if (f.kind !== 'figure') throw new Error(`figure ${f.n} omitted: ${f.reason}`);
      const { svg, warnings } = await renderSvg(f.spec);
      expect(warnings, `figure ${f.n}`).toEqual([]);
      const marks = ['symbol', 'line', 'rect', 'rule', 'tick'].reduce((sum, kind) => sum + markItems(svg, kind), 0);
      expect(marks, `figure ${f.n} data marks`).toBeGreaterThan(3);
    }
  });
});
