import { describe, expect, it } from 'vitest';
import {
  autoObjective,
  autoScore,
  fixedTechnique,
  median,
  objectiveValue,
  predictionErrors,
  relativeError,
} from '../../../../cli/compare/scores.ts';
import { cellFixture } from '../../../helpers/compare-fixture.ts';

describe('median', () => {
  it.each([
    [[], null],
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[10, -10], 0],
  ])('median(%j) = %j', (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it('does not reorder its input', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe('relativeError', () => {
  it.each([
    [120, 100, 0.2],
    [75, 100, -0.25],
    [100, 100, 0],
  ])('predicted %d, measured %d → %d', (predicted, measured, expected) => {
    expect(relativeError(predicted, measured)).toBeCloseTo(expected, 12);
  });

  it.each([0, -5, null, undefined, NaN, Infinity])('is null when the measurement is %s', (measured) => {
    expect(relativeError(10, measured)).toBeNull();
  });

  it('is null when the prediction is not finite', () => {
    expect(relativeError(Infinity, 10)).toBeNull();
  });
});

describe('predictionErrors', () => {
  it('takes the median |relative error| over completed cells with a prediction only', () => {
    const errors = predictionErrors([
      cellFixture({ technique: 'precopy', totalMs: 100, downtimeMs: 10, predicted: { totalMs: 120, downtimeMs: 10 } }), // +20 %, 0 %
      cellFixture({ technique: 'postcopy', totalMs: 200, downtimeMs: 20, predicted: { totalMs: 150, downtimeMs: 30 } }), // −25 %, +50 %
      cellFixture({ technique: 'hybrid', totalMs: 400, downtimeMs: 40, predicted: { totalMs: 400, downtimeMs: 20 } }), // 0 %, −50 %
      // Not counted: failed (with a prediction), no prediction, a downtime that never happened.
      cellFixture({ technique: 'precopy', totalMs: null, predicted: { totalMs: 1, downtimeMs: 1 }, repeat: 2 }),
      cellFixture({ technique: 'precopy', totalMs: 100, downtimeMs: 10, repeat: 3 }),
      cellFixture({
        technique: 'precopy',
        totalMs: 100,
        downtimeMs: null,
        predicted: { totalMs: 100, downtimeMs: 9 },
        repeat: 4,
      }),
    ]);
    expect(errors.totalTime.cells).toBe(4);
    expect(errors.totalTime.medianAbs).toBeCloseTo(0.1, 12); // |errors| 0.2, 0.25, 0, 0 → (0 + 0.2) / 2
    expect(errors.totalTime.medianSigned).toBeCloseTo(0, 12);
    expect(errors.totalTime.maxAbs).toBeCloseTo(0.25, 12);
    expect(errors.downtime.cells).toBe(3);
    expect(errors.downtime.medianAbs).toBeCloseTo(0.5, 12); // 0, 0.5, 0.5
    expect(errors.downtime.medianSigned).toBeCloseTo(0, 12); // −0.5, 0, +0.5
  });

  it('is empty, not zero, when nothing could be compared', () => {
    const errors = predictionErrors([cellFixture({ technique: 'precopy', totalMs: null })]);
    expect(errors.totalTime).toEqual({ cells: 0, medianAbs: null, medianSigned: null, maxAbs: null });
  });
});

describe('technique names', () => {
  it('tells fixed techniques from auto objectives', () => {
    expect(fixedTechnique('hybrid')).toBe('hybrid');
    expect(fixedTechnique('auto:bytes')).toBeNull();
    expect(autoObjective('auto:total-time')).toBe('total-time');
    expect(autoObjective('precopy')).toBeNull();
  });
});

describe('objectiveValue', () => {
  const cell = cellFixture({ technique: 'precopy', totalMs: 500, downtimeMs: 12, wireBytes: 7000 });
  it('reads downtime, total time and wire bytes', () => {
    expect(objectiveValue(cell.report, 'downtime')).toBe(12);
    expect(objectiveValue(cell.report, 'total-time')).toBe(500);
    expect(objectiveValue(cell.report, 'bytes')).toBe(7000);
  });

  it('has none for a failed migration or no report', () => {
    expect(objectiveValue(cellFixture({ technique: 'precopy', totalMs: null }).report, 'total-time')).toBeNull();
    expect(objectiveValue(null, 'bytes')).toBeNull();
  });
});

describe('autoScore', () => {
  /** One workload/link/repeat group: fixed downtimes 50 (precopy), 10 (postcopy), 30 (hybrid). */
  function group(repeat: number, auto: number | null, overrides: { precopyFailed?: boolean } = {}) {
    return [
      cellFixture({ technique: 'precopy', repeat, totalMs: overrides.precopyFailed ? null : 1000, downtimeMs: 50 }),
      cellFixture({ technique: 'postcopy', repeat, totalMs: 1000, downtimeMs: 10 }),
      cellFixture({ technique: 'hybrid', repeat, totalMs: 1000, downtimeMs: 30 }),
      cellFixture({ technique: 'auto:downtime', repeat, totalMs: auto === null ? null : 1000, downtimeMs: auto ?? 0 }),
    ];
  }

  it.each([
    // auto's downtime, never worse than the worst (50), within 10 % of the best (10 → ≤ 11)
    [10.5, true, true],
    [11, true, true],
    [12, true, false],
    [50, true, false],
    [60, false, false],
    [null, false, false], // auto failed where every fixed technique completed
  ])('auto downtime %s: never worse %s, within 10 %% %s', (auto, neverWorse, withinBest) => {
    const score = autoScore(group(1, auto));
    expect(score.compared).toBe(1);
    expect(score.comparisons[0]).toMatchObject({
      objective: 'downtime',
      neverWorse,
      withinBest,
      best: { technique: 'postcopy', value: 10 },
    });
    expect(score.comparisons[0]!.worst.technique).toBe('precopy');
  });

  it('counts a fixed technique that failed as the worst', () => {
    const score = autoScore(group(1, 45, { precopyFailed: true }));
    expect(score.comparisons[0]).toMatchObject({ neverWorse: true, withinBest: false });
    expect(score.comparisons[0]!.worst).toEqual({ technique: 'precopy', value: Infinity });
  });

  it('compares within the same workload and link, each side the median over its repeats', () => {
    const cells = [
      ...group(1, 10),
      // repeat 2: auto noisy (55 > every fixed technique's 50 of repeat 1)...
      ...group(2, 55),
      // ...repeat 3: fixed techniques noisy the other way; medians: auto 12, precopy 50, postcopy 10
      cellFixture({ technique: 'precopy', repeat: 3, totalMs: 1000, downtimeMs: 60 }),
      cellFixture({ technique: 'postcopy', repeat: 3, totalMs: 1000, downtimeMs: 12 }),
      cellFixture({ technique: 'auto:downtime', repeat: 3, totalMs: 1000, downtimeMs: 12 }),
      // another link: its fixed cell is far better, but not auto's competitor
      cellFixture({ technique: 'postcopy', link: 'other', repeat: 1, totalMs: 1000, downtimeMs: 1 }),
      // another workload: auto alone, nothing to compare with
      cellFixture({ technique: 'auto:downtime', workload: 'v', repeat: 1, totalMs: 1000, downtimeMs: 99 }),
    ];
    const score = autoScore(cells);
    expect(score.compared).toBe(1);
    expect(score.comparisons[0]).toMatchObject({
      cellId: 'l/w/auto:downtime',
      repeats: 3,
      auto: 12,
      best: { technique: 'postcopy', value: 10 },
      worst: { technique: 'precopy', value: 50 },
      neverWorse: true,
      withinBest: false,
    });
    expect(score.notCompared).toEqual([
      { cellId: 'l/v/auto:downtime/1', reason: 'no fixed technique ran on the same workload and link' },
    ]);
  });

  it('scores each auto objective on its own measure', () => {
    const cells = [
      cellFixture({ technique: 'precopy', totalMs: 1000, downtimeMs: 50, wireBytes: 300 }),
      cellFixture({ technique: 'postcopy', totalMs: 2000, downtimeMs: 10, wireBytes: 100 }),
      cellFixture({ technique: 'auto:total-time', totalMs: 1050, downtimeMs: 50, wireBytes: 300 }), // within 10 % of 1000
      cellFixture({ technique: 'auto:bytes', totalMs: 1000, downtimeMs: 50, wireBytes: 300 }), // the worst on bytes: not worse, not within
    ];
    const score = autoScore(cells);
    expect(score.comparisons.map((c) => [c.objective, c.neverWorse, c.withinBest])).toEqual([
      ['total-time', true, true],
      ['bytes', true, false],
    ]);
    expect(score).toMatchObject({ compared: 2, neverWorse: 2, withinBest: 1, neverWorsePct: 100, withinBestPct: 50 });
  });

  it('leaves out auto cells that never ran, and has no percentages when nothing was compared', () => {
    const score = autoScore([cellFixture({ technique: 'auto:downtime', totalMs: null, outcome: 'skipped' })]);
    expect(score).toMatchObject({ compared: 0, neverWorsePct: null, withinBestPct: null });
    expect(score.notCompared[0]!.reason).toBe('not run (skipped)');
  });

  it('does not score when every fixed technique failed', () => {
    const cells = [
      cellFixture({ technique: 'precopy', totalMs: null }),
      cellFixture({ technique: 'auto:downtime', totalMs: 1000, downtimeMs: 5 }),
    ];
    expect(autoScore(cells).notCompared[0]!.reason).toBe('no fixed technique completed on the same workload and link');
  });
});

describe("within the spread of the best technique's repeats", () => {
  it("counts an auto that is out of 10 % but no slower than the best technique's slowest repeat; one repeat never does", () => {
    const run = (repeat: number, pre: number, auto: number) => [
      cellFixture({ technique: 'precopy', repeat, totalMs: 1000, downtimeMs: pre }),
      cellFixture({ technique: 'postcopy', repeat, totalMs: 1000, downtimeMs: 20 }),
      cellFixture({ technique: 'auto:downtime', repeat, totalMs: 1000, downtimeMs: auto }),
    ];
    // precopy 2.75 / 2.97 / 6.11 ms (median 2.97), auto 3.15 / 3.89 / 6.18 (median 3.89): 31 % more.
    const spread = autoScore([...run(1, 6.11, 3.15), ...run(2, 2.75, 3.89), ...run(3, 2.97, 6.18)]);
    expect(spread.comparisons[0]).toMatchObject({ withinBest: false, withinBestOrSpread: true });
    expect(spread).toMatchObject({ withinBest: 0, withinBestOrSpread: 1, withinBestOrSpreadPct: 100 });
    // Above the slowest repeat: not within.
    const out = autoScore([...run(1, 3, 7), ...run(2, 3.2, 7), ...run(3, 2.9, 7)]);
    expect(out.comparisons[0]).toMatchObject({ withinBest: false, withinBestOrSpread: false });
    // One repeat has no spread.
    expect(autoScore(run(1, 3, 3.5)).comparisons[0]).toMatchObject({ withinBestOrSpread: false });
  });
});

describe('techniques with engine options (issue 17) are not fixed techniques for the auto score', () => {
  it('fixedTechnique is null for them, and autoObjective too', () => {
    expect(fixedTechnique('precopy+compress')).toBeNull();
    expect(fixedTechnique('precopy+auto-converge')).toBeNull();
    expect(autoObjective('precopy+dirty-limit=20MB/s')).toBeNull();
  });

  it('auto is scored against pre-copy, post-copy and hybrid only, however well an option did', () => {
    const cells = [
      cellFixture({ technique: 'precopy', totalMs: 1000, downtimeMs: 50 }),
      cellFixture({ technique: 'postcopy', totalMs: 1000, downtimeMs: 10 }),
      cellFixture({ technique: 'precopy+auto-converge', totalMs: 1000, downtimeMs: 2 }),
      cellFixture({ technique: 'precopy+compress', totalMs: 1000, downtimeMs: 400 }),
      cellFixture({ technique: 'auto:downtime', totalMs: 1000, downtimeMs: 10.5 }),
    ];
    const score = autoScore(cells);
    expect(score.compared).toBe(1);
    const [c] = score.comparisons;
    expect(c!.best).toEqual({ technique: 'postcopy', value: 10 });
    expect(c!.worst).toEqual({ technique: 'precopy', value: 50 });
    expect(c!.withinBest).toBe(true);
    expect(c!.neverWorse).toBe(true);
  });
});
