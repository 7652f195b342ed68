import { describe, expect, it } from 'vitest';
import {
  CSV_COLUMNS,
  csvField,
  markdownText,
  resultsCsv,
  summaryMarkdown,
  summarySections,
} from '../../../../cli/compare/summary.ts';
import { cellFixture, compareFixture, resultsOf } from '../../../helpers/compare-fixture.ts';

/** An RFC 4180 reader, independent of the writer under test: rows of fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  expect(field, 'the CSV ends with a line break').toBe('');
  return rows;
}

describe('csvField', () => {
  it.each([
    ['plain', 'plain'],
    ['', ''],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\r', '"cr\r"'],
    [' padded', '" padded"'],
    ['-12.5', '-12.5'],
  ])('%j → %j', (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });
});

describe('resultsCsv', () => {
  const results = compareFixture();
  const rows = parseCsv(resultsCsv(results));
  const header = rows[0]!;
  const column = (row: string[], name: string): string => row[header.indexOf(name)]!;

  it('has a header and one row per cell, every row as wide as the header', () => {
    expect(header).toEqual(CSV_COLUMNS.map((c) => c.header));
    expect(rows).toHaveLength(results.cells.length + 1);
    for (const row of rows) expect(row).toHaveLength(header.length);
  });

  it('has the columns the issue asks for', () => {
    for (const name of [
      'id',
      'technique',
      'workload',
      'link',
      'repeat',
      'outcome',
      'error_code',
      'dirty_rate_MBps',
      'link_bandwidth_MBps',
      'link_rtt_ms',
      'total_ms',
      'downtime_ms',
      'wire_bytes',
      'rounds',
      'switchover_reason',
      'predicted_total_ms',
      'predicted_downtime_ms',
      'predicted_wire_bytes',
      'total_rel_error',
      'downtime_rel_error',
      'network_downtime_ms',
      'switchover_gap_ms',
      'fault_p50_ms',
      'fault_p99_ms',
    ]) {
      expect(header).toContain(name);
    }
  });

  it("puts each cell's numbers in its row", () => {
    results.cells.forEach((cell, i) => {
      const row = rows[i + 1]!;
      expect(column(row, 'id')).toBe(cell.spec.id);
      expect(Number(column(row, 'wire_bytes'))).toBe(cell.report!.bytes.wire);
      expect(Number(column(row, 'total_ms'))).toBeCloseTo(cell.report!.times.totalMs, 3);
      expect(Number(column(row, 'link_bandwidth_MBps'))).toBeCloseTo(cell.measured.link!.bandwidthBps / 1e6, 3);
      expect(Number(column(row, 'rounds'))).toBe(cell.report!.rounds.length);
    });
  });

  it('leaves what was not measured empty: a failed cell has no downtime, an unprobed one no network figures', () => {
    const failed = rows.find((r) => column(r, 'outcome') === 'failed')!;
    expect(column(failed, 'downtime_ms')).toBe('');
    expect(column(failed, 'error_code')).toBe('ERR_SWITCHOVER_TIMEOUT');
    expect(column(failed, 'total_rel_error')).toBe('');
    const unprobed = rows.find((r) => column(r, 'workload') === 'hotset 20 MB/s')!;
    expect(column(unprobed, 'network_downtime_ms')).toBe('');
    const probedPostcopy = rows.find(
      (r) => column(r, 'workload') === 'kv probed' && column(r, 'technique') === 'postcopy',
    )!;
    expect(Number(column(probedPostcopy, 'switchover_gap_ms'))).toBeGreaterThan(0);
    expect(Number(column(probedPostcopy, 'fault_p99_ms'))).toBeGreaterThan(0);
  });

  it('quotes names and messages with commas, quotes and line breaks, and they read back exactly', () => {
    const cell = cellFixture({ technique: 'precopy', totalMs: null, workload: 'kv, "hot"', link: 'a\nb' });
    cell.error = { code: 'ERR_TIMEOUT', message: 'line one,\nline "two"' };
    const [, row] = parseCsv(resultsCsv(resultsOf([cell])));
    expect(column(row!, 'workload')).toBe('kv, "hot"');
    expect(column(row!, 'link')).toBe('a\nb');
    expect(column(row!, 'error_message')).toBe('line one,\nline "two"');
  });

  it('writes only the header for a run with no cells', () => {
    expect(parseCsv(resultsCsv(resultsOf([])))).toEqual([header]);
  });
});

describe('summarySections', () => {
  it('says what was run: host, matrix, repeats, skipped links with their reasons, interruption', () => {
    const results = compareFixture({ cells: 5 });
    const [run] = summarySections(results);
    const text = [...run!.paragraphs, ...run!.bullets].join('\n');
    expect(text).toContain('2 CPUs, Node v20.19.0, not as root');
    expect(text).toContain('Techniques: precopy, postcopy, hybrid, auto:downtime.');
    expect(text).toContain('64.0 MiB VM, hotset:wss=16MiB,rate=5000');
    expect(text).toContain('probed every 2.00 ms');
    expect(text).toContain('capped at 12.5 MB/s');
    expect(text).toContain('Repeats: 2.');
    expect(text).toContain('Skipped link wan: the lab needs root (network namespaces, tc)');
    expect(text).toContain('interrupted');
  });

  it('tables each link: technique × workload, the median over repeats, "(k of n)" when some failed', () => {
    const cells = [
      cellFixture({ technique: 'precopy', workload: 'A', repeat: 1, totalMs: 100, downtimeMs: 10, wireBytes: 1024 }),
      cellFixture({ technique: 'precopy', workload: 'A', repeat: 2, totalMs: 300, downtimeMs: 30, wireBytes: 3072 }),
      cellFixture({ technique: 'precopy', workload: 'A', repeat: 3, totalMs: null }),
      cellFixture({ technique: 'postcopy', workload: 'A', repeat: 1, totalMs: 50, downtimeMs: 5, wireBytes: 1024 }),
      cellFixture({ technique: 'postcopy', workload: 'B', repeat: 1, totalMs: null }),
    ];
    const link = summarySections(resultsOf(cells)).find((s) => s.title === 'Link l')!;
    const [total, downtime, bytes] = link.tables;
    expect(total!.header).toEqual(['technique', 'A', 'B']);
    expect(total!.rows).toEqual([
      ['precopy', '200.0 ms (2 of 3)', ''],
      ['postcopy', '50.0 ms', '— (0 of 1)'],
    ]);
    expect(downtime!.rows[0]).toEqual(['precopy', '20.0 ms (2 of 3)', '']);
    expect(bytes!.rows[0]).toEqual(['precopy', '2.00 KiB (2 of 3)', '']);
  });

  it('gives the prediction error and the auto score, with counts and percentages', () => {
    const cells = [
      cellFixture({ technique: 'precopy', totalMs: 100, downtimeMs: 10, predicted: { totalMs: 120, downtimeMs: 10 } }),
      cellFixture({ technique: 'postcopy', totalMs: 200, downtimeMs: 20, predicted: { totalMs: 150, downtimeMs: 30 } }),
      cellFixture({ technique: 'auto:downtime', totalMs: 300, downtimeMs: 12 }),
      cellFixture({ technique: 'auto:downtime', totalMs: 300, downtimeMs: 25, repeat: 2 }),
      cellFixture({ technique: 'precopy', totalMs: 100, downtimeMs: 20, repeat: 2 }),
    ];
    const sections = summarySections(resultsOf(cells));
    const prediction = sections.find((s) => s.title === 'Prediction error')!;
    expect(prediction.bullets[0]).toContain('Total time: median |relative error| 23 % over 2 completed cells');
    expect(prediction.bullets[1]).toContain('Downtime: median |relative error| 25 % over 2 completed cells');
    const auto = sections.find((s) => s.title === 'Auto')!;
    // Medians over repeats: auto 18.5 ms, precopy 15 ms, postcopy 20 ms (one repeat).
    expect(auto.bullets).toContain('Never worse than the worst fixed technique: 1 of 1 (100 %).');
    expect(auto.bullets).toContain('Within 10 % of the best fixed technique: 0 of 1 (0 %).');
    expect(auto.tables[0]!.rows).toHaveLength(1);
    expect(auto.tables[0]!.rows[0]!.slice(0, 2)).toEqual(['l/w/auto:downtime (2 repeats)', 'downtime']);
  });

  it('lists the cells that did not complete with their error', () => {
    const cell = cellFixture({ technique: 'hybrid', totalMs: null });
    cell.error = { code: 'ERR_CONNECTION', message: 'the link broke' };
    const failed = summarySections(resultsOf([cell])).at(-1)!;
    expect(failed.tables[0]!.rows).toEqual([['l/w/hybrid/1', 'failed', 'ERR_CONNECTION', 'the link broke']]);
  });

  it('copes with a run that has no cells', () => {
    const sections = summarySections(resultsOf([]));
    expect(sections.map((s) => s.title)).toEqual([
      'What was run',
      'Prediction error',
      'Auto',
      'Cells that did not complete',
    ]);
    expect(sections.at(-1)!.paragraphs).toEqual(['No cell ran.']);
  });
});

describe('summaryMarkdown', () => {
  it('escapes what Markdown would act on, keeping table rows whole', () => {
    const cell = cellFixture({ technique: 'precopy', totalMs: null, workload: 'a|b <i>x</i> *y*' });
    cell.error = { code: 'ERR_TIMEOUT', message: 'pipe | and\nnewline' };
    const md = summaryMarkdown(resultsOf([cell]));
    expect(md).toContain('a\\|b \\<i\\>x\\</i\\> \\*y\\*');
    expect(md).not.toContain('<i>');
    const failedRow = md.split('\n').find((line) => line.includes('| failed |'))!;
    // 4 columns: 5 unescaped pipes.
    expect(failedRow.match(/(?<!\\)\|/g)).toHaveLength(5);
    expect(failedRow).toContain('ERR_TIMEOUT');
  });

  it('renders every section of the fixture as headings and tables', () => {
    const md = summaryMarkdown(compareFixture());
    expect(md.startsWith('# livemig compare: summary\n')).toBe(true);
    for (const title of [
      '## What was run',
      '## Link loopback',
      '## Link loopback 100mbit',
      '## Prediction error',
      '## Auto',
    ]) {
      expect(md).toContain(`\n${title}\n`);
    }
    expect(md).toContain('| technique | hotset 20 MB/s | kv probed |');
    expect(md).toContain('| --- | ---: | ---: |');
  });

  it.each([
    ['ERR_TIMEOUT', 'ERR_TIMEOUT'],
    ['_lead', '\\_lead'],
    ['# heading', '\\# heading'],
    ['a`b`', 'a\\`b\\`'],
    ['[link](x)', '\\[link\\](x)'],
  ])('markdownText(%j) = %j', (text, expected) => {
    expect(markdownText(text)).toBe(expected);
  });
});
