import { describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import {
  bytesVsDirtyRate,
  clientTimeline,
  compareFigures,
  downtimeVsDirtyRate,
  faultHistogramOf,
  faultLatency,
  guestSlowdown,
  lostSpans,
  migrationPhases,
  predictedVsMeasured,
  techniqueColors,
  thinLatency,
  throughputBins,
  totalTimeVsBandwidth,
  type CompareFigure,
  type FigureResult,
} from '../../../../cli/compare/figures.ts';
import type { CellResult, CompareResults, TechniqueName } from '../../../../cli/compare/results.ts';
import { compareFixture, resultsOf } from '../../../helpers/compare-fixture.ts';
import { sampleReport } from '../../../helpers/report.ts';

type Row = Record<string, unknown>;

function drawn(f: FigureResult): CompareFigure {
  if (f.kind !== 'figure') throw new Error(`figure ${f.n} omitted: ${f.reason}`);
  return f;
}

/** Every inline data set in a spec (top level, layers, concatenations), in order. */
function dataSets(spec: unknown): Row[][] {
  const sets: Row[][] = [];
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const n = node as {
      data?: { values?: Row[] };
      layer?: unknown[];
      vconcat?: unknown[];
      hconcat?: unknown[];
      spec?: unknown;
    };
    if (n.data?.values) sets.push(n.data.values);
    for (const child of [...(n.layer ?? []), ...(n.vconcat ?? []), ...(n.hconcat ?? []), ...(n.spec ? [n.spec] : [])])
      walk(child);
  };
  walk(spec);
  return sets;
}

const results = compareFixture();
const completed = results.cells.filter((c) => c.outcome === 'completed');

describe('compareFigures', () => {
  it('draws all seven figures from the fixture, numbered, with distinct slugs', () => {
    const figures = compareFigures(results);
    expect(figures.map((f) => [f.n, f.kind])).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => [n, 'figure']));
    expect(new Set(figures.map((f) => f.slug)).size).toBe(7);
    for (const f of figures) expect(f.slug).toMatch(/^[a-z0-9-]+$/);
  });

  it('says in every caption what was run and where the numbers come from', () => {
    for (const f of compareFigures(results).map(drawn)) {
      expect(f.caption, `figure ${f.n}`).toMatch(/MiB VM/);
      expect(f.caption, `figure ${f.n}`).toMatch(/loopback \(\d+\.\d MB\/s, RTT 80 µs as measured\)/);
      expect(f.caption, `figure ${f.n}`).toContain('2 repeats');
      expect(f.caption, `figure ${f.n}`).toMatch(/results\.(csv|json)/);
    }
  });

  it('omits every figure, each with a reason, when every cell failed', () => {
    const figures = compareFigures(compareFixture({ allFailed: true }));
    for (const f of figures) {
      expect(f.kind, `figure ${f.n}`).toBe('omitted');
      if (f.kind === 'omitted') expect(f.reason.length).toBeGreaterThan(10);
    }
  });

  it('omits every figure of a run with no cells', () => {
    const empty: CompareResults = { ...compareFixture(), cells: [] };
    expect(compareFigures(empty).every((f) => f.kind === 'omitted')).toBe(true);
  });
});

describe('1. downtime vs dirty rate', () => {
  it('has one row per completed cell: its measured dirty rate and its downtime, faceted by link', () => {
    const f = drawn(downtimeVsDirtyRate(results));
    const [rows] = dataSets(f.spec);
    expect(rows).toHaveLength(completed.length);
    for (const cell of completed) {
      expect(rows).toContainEqual(
        expect.objectContaining({
          id: cell.spec.id,
          technique: cell.spec.technique,
          link: cell.spec.link.name,
          dirtyRateMBps: cell.measured.dirtyRate!.dirtyRateMBps,
          downtimeMs: cell.report!.times.downtimeMs,
        }),
      );
    }
    expect(rows!.some((r) => r.id === 'loopback 100mbit/hotset 20 MB/s/precopy/2')).toBe(false); // it failed
    expect(JSON.stringify(f.spec)).toContain('"facet":{"field":"link"');
    expect(JSON.stringify(f.spec)).toContain('"op":"median"');
  });
});

describe('2. total time vs bandwidth', () => {
  it('plots total time against the bandwidth measured before each cell, in MB/s', () => {
    const [rows] = dataSets(drawn(totalTimeVsBandwidth(results)).spec);
    const cell = completed[0]!;
    expect(rows).toContainEqual(
      expect.objectContaining({
        id: cell.spec.id,
        bandwidthMBps: cell.measured.link!.bandwidthBps / 1e6,
        totalMs: cell.report!.times.totalMs,
      }),
    );
    expect(rows).toHaveLength(completed.length);
  });
});

describe('3. bytes vs dirty rate', () => {
  it('has the wire bytes of each cell and a reference rule per guest memory size', () => {
    const f = drawn(bytesVsDirtyRate(results));
    const [memory, , points] = dataSets(f.spec);
    expect(memory).toEqual([
      { wireMiB: 64, label: 'guest memory 64.0 MiB' },
      { wireMiB: 16, label: 'guest memory 16.0 MiB' },
    ]);
    expect(points).toHaveLength(completed.length);
    expect(points![0]!.wireMiB).toBeCloseTo(completed[0]!.report!.bytes.wire / 2 ** 20, 9);
    expect(JSON.stringify(f.spec)).toContain('"type":"rule"');
  });
});

describe('4. the client view', () => {
  const t0 = Date.parse('2026-12-02T06:00:00.000Z');

  it('finds the phases: setup, each round, stop-and-copy, post-copy', () => {
    const report: MigrationReport = sampleReport({
      mode: 'hybrid',
      times: {
        startedAt: new Date(t0).toISOString(),
        endedAt: '',
        totalMs: 600,
        downtimeMs: 20,
        setupMs: 40,
        pausedAt: t0 + 200,
      },
      rounds: [
        { index: 0, pages: 1, bytes: 1, ms: 100, bandwidthBps: 1, dirtyAfter: 0 },
        { index: 1, pages: 1, bytes: 1, ms: 50, bandwidthBps: 1, dirtyAfter: 0 },
      ],
      postcopy: {
        absentAtSwitchover: 1,
        pagesFetchedOnDemand: 0,
        pagesPushed: 1,
        faults: 0,
        faultLatencyMs: null,
        vcpuBlockedMs: 0,
        stepsPerSecBefore: 1,
        stepsPerSecDuring: 1,
        postcopyMs: 300,
        recoveries: 0,
      },
    });
    expect(migrationPhases(report)).toEqual([
      { phase: 'setup', kind: 'setup', startMs: 0, endMs: 40 },
      { phase: 'round 0', kind: 'pre-copy', startMs: 40, endMs: 140 },
      { phase: 'round 1', kind: 'pre-copy', startMs: 140, endMs: 190 },
      { phase: 'stop-and-copy', kind: 'stop-and-copy', startMs: 200, endMs: 220 },
      { phase: 'post-copy', kind: 'post-copy', startMs: 220, endMs: 520 },
    ]);
  });

  it('leaves out stop-and-copy when the report has no pause time', () => {
    const report = sampleReport({
      times: { startedAt: new Date(t0).toISOString(), endedAt: '', totalMs: 100, downtimeMs: 5, setupMs: 10 },
    });
    expect(migrationPhases(report).map((p) => p.kind)).toEqual(['setup']);
  });

  it('bins replies per second by when they came, whole bins only', () => {
    // A request every 10 ms for 200 ms, 1 ms latency; those sent 50–99 ms never answered.
    const samples = Array.from({ length: 20 }, (_, i) => ({
      sentAt: t0 + i * 10,
      latencyMs: i >= 5 && i < 10 ? null : 1,
    }));
    expect(throughputBins(samples, t0)).toEqual([
      { tMs: 0, repliesPerSec: 100 },
      { tMs: 50, repliesPerSec: 0 },
      { tMs: 100, repliesPerSec: 100 },
    ]);
  });

  it('merges each run of unanswered requests into one span', () => {
    const samples = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({
      sentAt: t0 + i * 2,
      latencyMs: [1, 2, 5].includes(i) ? null : 0.5,
    }));
    expect(lostSpans(samples, t0, 2)).toEqual([
      { startMs: 2, endMs: 6, requests: 2 },
      { startMs: 10, endMs: 12, requests: 1 },
    ]);
    expect(lostSpans([], t0, 2)).toEqual([]);
  });

  it('thins a long latency series to the slowest reply of each slice', () => {
    const points = Array.from({ length: 10_000 }, (_, i) => ({ tMs: i, latencyMs: i === 4321 ? 99 : 1 }));
    const { points: kept, thinned } = thinLatency(points, 1000);
    expect(thinned).toBe(true);
    expect(kept.length).toBeLessThanOrEqual(1000);
    expect(kept).toContainEqual({ tMs: 4321, latencyMs: 99 });
    expect(thinLatency(points.slice(0, 10), 1000)).toEqual({ points: points.slice(0, 10), thinned: false });
  });

  it('draws one probed migration per technique, its samples relative to the start, and its phases', () => {
    const f = drawn(clientTimeline(results));
    const blocks = (f.spec as { vconcat: { title: string }[] }).vconcat;
    expect(blocks.map((b) => b.title)).toEqual([
      'precopy: loopback/kv probed/precopy/1',
      'postcopy: loopback/kv probed/postcopy/1',
      'hybrid: loopback/kv probed/hybrid/1',
      'auto:downtime (chose precopy): loopback/kv probed/auto:downtime/1',
    ]);
    const cell = results.cells.find((c) => c.spec.id === 'loopback/kv probed/postcopy/1')!;
    const sets = dataSets(blocks[1]);
    const phases = sets[0]!;
    expect(phases.map((p) => p.kind)).toEqual(['setup', 'stop-and-copy', 'post-copy']);
    const latency = sets.find((s) => s.length > 0 && 'latencyMs' in s[0]!)!;
    const answered = cell.probe!.samples.filter((s) => s.latencyMs !== null);
    expect(latency).toHaveLength(answered.length);
    expect(latency[0]).toEqual({
      tMs: answered[0]!.sentAt - Date.parse(cell.report!.times.startedAt),
      latencyMs: answered[0]!.latencyMs,
    });
    expect(sets.some((s) => s.length > 0 && 'repliesPerSec' in s[0]!)).toBe(true);
  });

  it('is omitted, with the reason, when no cell was probed', () => {
    const f = clientTimeline(compareFixture({ probed: false }));
    expect(f).toMatchObject({ kind: 'omitted', n: 4 });
    expect(f.kind === 'omitted' && f.reason).toContain('no probed cell');
  });
});

describe('5. fault latency', () => {
  it('sums the histograms per technique and bucket when reports have them', () => {
    const f = drawn(faultLatency(results));
    const [rows] = dataSets(f.spec);
    const postcopy = results.cells.filter((c) => c.spec.technique === 'postcopy' && c.outcome === 'completed');
    const expected = postcopy.reduce((sum, c) => sum + faultHistogramOf(c.report!)!.counts[2]!, 0);
    expect(rows).toContainEqual({ technique: 'postcopy', fromUs: 256, toUs: 512, count: expected });
    expect(rows!.some((r) => r.technique === 'precopy')).toBe(false);
    expect(f.caption).toContain('histogram');
  });

  it('falls back to p50/p99/max rules, and says so, when no report has a histogram', () => {
    const f = drawn(faultLatency(compareFixture({ histogram: false })));
    const [rows] = dataSets(f.spec);
    const cell = results.cells.find((c) => c.spec.id === 'loopback/hotset 20 MB/s/postcopy/1')!;
    const p = cell.report!.postcopy!.faultLatencyMs!;
    expect(rows!.filter((r) => r.id === cell.spec.id).map((r) => [r.stat, r.ms])).toEqual([
      ['p50', p.p50],
      ['p99', p.p99],
      ['max', p.max],
    ]);
    expect(f.caption).toContain('no cell');
    expect(f.caption).toContain('p50, p99 and max are drawn as rules');
  });

  it('reads a malformed histogram as none', () => {
    const report = sampleReport();
    const withHistogram = (h: unknown): MigrationReport =>
      ({ ...report, postcopy: { faultLatencyHistogram: h } }) as unknown as MigrationReport;
    expect(faultHistogramOf(report)).toBeNull();
    expect(faultHistogramOf(withHistogram({ bucketsUs: [1, 2], counts: [1] }))).toBeNull();
    expect(faultHistogramOf(withHistogram({ bucketsUs: ['1'], counts: [1] }))).toBeNull();
    expect(faultHistogramOf(withHistogram(null))).toBeNull();
    expect(faultHistogramOf(withHistogram({ bucketsUs: [1], counts: [3] }))).toEqual({ bucketsUs: [1], counts: [3] });
  });
});

describe('6. guest slowdown', () => {
  it('is steps/s during post-copy over the unmigrated rate; plain pre-copy is not drawn', () => {
    const f = drawn(guestSlowdown(results));
    const [rows] = dataSets(f.spec);
    const cell = completed.find((c) => c.report!.postcopy !== undefined)!;
    expect(rows).toContainEqual(
      expect.objectContaining({
        id: cell.spec.id,
        phase: 'post-copy',
        relative: cell.report!.postcopy!.stepsPerSecDuring / cell.baselineStepsPerSec!,
      }),
    );
    expect(rows!.some((r) => r.technique === 'precopy')).toBe(false);
    expect(f.caption).toMatch(/No cell ran a throttled pre-copy.*precopy\+auto-converge/);
    expect(f.caption).not.toMatch(/does not exist/);
  });

  /** A completed pre-copy cell of the fixture, run as `technique` with a throttle: 2 rounds at full speed, 2 throttled. */
  function throttledCell(technique: TechniqueName, kind: 'auto-converge' | 'dirty-limit', id: string): CellResult {
    const base = completed.find((c) => c.spec.technique === 'precopy')!;
    const report = base.report!;
    const rounds = [
      { ...report.rounds[0]!, index: 0, ms: 300, cpuThrottlePercent: 0, guestStepsPerSec: 1000 },
      { ...report.rounds[0]!, index: 1, ms: 100, cpuThrottlePercent: 0, guestStepsPerSec: 1000 },
      { ...report.rounds[0]!, index: 2, ms: 100, cpuThrottlePercent: 20, guestStepsPerSec: 800 },
      { ...report.rounds[0]!, index: 3, ms: 100, cpuThrottlePercent: 30, guestStepsPerSec: 700 },
      // The stop-and-copy: no throttle reading, the guest paused; not a pre-copy round.
      { ...report.rounds[0]!, index: 4, ms: 10 },
    ];
    return {
      ...base,
      spec: { ...base.spec, id, technique },
      baselineStepsPerSec: 1250,
      report: {
        ...report,
        rounds,
        throttle: {
          technique: kind,
          maxPercent: 99,
          peakPercent: 30,
          peakRound: 3,
          throttledRounds: 2,
          unthrottledStepsPerSec: 1000,
          throttledStepsPerSec: 750,
          speedWhileThrottled: 0.75,
          speedDuringPrecopy: 0.9,
          throttledDirtyRateBps: 1e6,
          maxThrottledRoundDirtyRateBps: 1e6,
        },
      },
    };
  }

  it('draws auto-converge and dirty-limit cells: steps/s over their pre-copy rounds ÷ the unmigrated rate', () => {
    const ac = throttledCell('precopy+auto-converge', 'auto-converge', 'x/ac/1');
    const dl = throttledCell('precopy+dirty-limit=20MB/s', 'dirty-limit', 'x/dl/1');
    const withThrottles = {
      ...results,
      matrix: { ...results.matrix, techniques: [...results.matrix.techniques, ac.spec.technique, dl.spec.technique] },
      cells: [...results.cells, ac, dl],
    };
    const f = drawn(guestSlowdown(withThrottles));
    const [rows] = dataSets(f.spec);
    // (1000·300 + 1000·100 + 800·100 + 700·100) ÷ 600 = 908.3 steps/s, ÷ 1250 unmigrated.
    const relative = (1000 * 300 + 1000 * 100 + 800 * 100 + 700 * 100) / 600 / 1250;
    expect(rows).toContainEqual(
      expect.objectContaining({
        id: 'x/ac/1',
        phase: 'pre-copy, auto-converge',
        relative,
        label: 'precopy+auto-converge',
      }),
    );
    expect(rows).toContainEqual(expect.objectContaining({ id: 'x/dl/1', phase: 'pre-copy, dirty-limit', relative }));
    expect(rows!.some((r) => r.phase === 'post-copy')).toBe(true);
    expect(f.caption).toMatch(/Throttled pre-copy cells \(precopy\+auto-converge, precopy\+dirty-limit=20MB\/s\)/);
    // Each new technique has a colour of its own, none a plain technique's.
    const scale = (f.spec as { layer: { encoding: { color: { scale: { domain: string[]; range: string[] } } } }[] })
      .layer[0]!.encoding.color.scale;
    const colorOf = (t: string) => scale.range[scale.domain.indexOf(t)];
    expect(new Set(scale.range).size).toBe(scale.range.length);
    expect(colorOf('precopy+auto-converge')).not.toBe(colorOf('precopy'));
  });

  it('omits the figure, saying where slowdown is measured, when no cell measured one', () => {
    const f = guestSlowdown({ ...results, cells: results.cells.filter((c) => c.spec.technique === 'precopy') });
    expect(f.kind).toBe('omitted');
    if (f.kind === 'omitted') expect(f.reason).toMatch(/precopy\+auto-converge/);
  });
});

describe('techniqueColors', () => {
  it('keeps the plain techniques’ colours and gives the others distinct ones, in order', () => {
    const colors = techniqueColors(['precopy', 'precopy+compress', 'postcopy', 'precopy+xbzrle']);
    expect(colors[0]).toBe('#4c78a8');
    expect(colors[2]).toBe('#f58518');
    expect(new Set(colors).size).toBe(4);
  });
});

describe('7. predicted vs measured', () => {
  it('has two panels, total time and downtime, a point per completed cell with a prediction, and y = x', () => {
    const f = drawn(predictedVsMeasured(results));
    const panels = (f.spec as { hconcat: { title: string }[] }).hconcat;
    expect(panels.map((p) => p.title)).toEqual(['total time', 'downtime']);
    const [identity, points] = dataSets(panels[0]);
    expect(identity).toHaveLength(2);
    expect(identity![0]!.measuredMs).toBe(identity![0]!.predictedMs);
    expect(points).toHaveLength(completed.length);
    const cell = completed[3]!;
    expect(points).toContainEqual(
      expect.objectContaining({
        id: cell.spec.id,
        measuredMs: cell.report!.times.totalMs,
        predictedMs: cell.predicted!.totalMs,
      }),
    );
  });

  it('is omitted when no completed cell has a prediction', () => {
    const cells = compareFixture().cells.map((c) => ({ ...c, predicted: null }));
    expect(predictedVsMeasured(resultsOf(cells)).kind).toBe('omitted');
  });
});
