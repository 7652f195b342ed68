/**
 * `--mode auto`'s choice (shared/src/predict/choose.ts), from hand-made predictions: the least
 * on the objective wins; within the margin of the best (downtime: 5 ms or 10 %, whichever is
 * more; total time 5 %; bytes 2 %) the safer wins — pre-copy, then hybrid, then post-copy; a
 * downtime ceiling filters, and when nothing is under it the least downtime is chosen and `why`
 * says the ceiling cannot be met.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  choose,
  OBJECTIVES,
  type Objective,
  type Prediction,
  type Technique,
} from '../../../../shared/src/predict/index.ts';

function pred(technique: Technique, downtimeMs: number, totalMs: number, wireBytes: number): Prediction {
  return {
    technique,
    rounds: technique === 'postcopy' ? 0 : 3,
    totalMs,
    downtimeMs,
    wireBytes,
    switchover: technique === 'postcopy' ? 'postcopy' : 'converged',
  };
}

/** Three predictions, each best on one objective by far (outside every margin). */
const pre = pred('precopy', 900, 4000, 300e6);
const hyb = pred('hybrid', 400, 9000, 500e6);
const post = pred('postcopy', 50, 7000, 800e6);
const ALL = [pre, hyb, post];

const value = (p: Prediction, o: Objective) =>
  o === 'downtime' ? p.downtimeMs : o === 'total-time' ? p.totalMs : p.wireBytes;

describe('choose: the best on the objective', () => {
  it.each([
    ['downtime', 'postcopy'],
    ['total-time', 'precopy'],
    ['bytes', 'precopy'],
  ] as const)('%s → %s', (objective, technique) => {
    const c = choose(ALL, objective);
    expect(c.technique).toBe(technique);
    expect(c.objective).toBe(objective);
    expect(c.predictions).toEqual(ALL);
    expect(c.why).toMatch(new RegExp(`^best predicted ${objective}: ${technique} `));
  });

  it('whatever order the predictions come in', () => {
    const reordered = [post, pre, hyb];
    expect(choose(reordered, 'downtime').technique).toBe('postcopy');
    expect(choose([hyb, post, pre], 'total-time').technique).toBe('precopy');
    expect(choose([hyb, post], 'total-time').technique).toBe('postcopy');
    expect(choose([hyb, post], 'bytes').technique).toBe('hybrid');
  });

  it('property: the chosen is within the margin of the minimum, and nothing safer is', () => {
    const margin = (best: number, o: Objective) =>
      o === 'downtime' ? Math.max(5, 0.1 * best) : o === 'total-time' ? 0.05 * best : 0.02 * best;
    const safety = { precopy: 0, hybrid: 1, postcopy: 2 } as const;
    const figures = fc.tuple(
      fc.double({ min: 1, max: 10_000, noNaN: true }),
      fc.double({ min: 100, max: 100_000, noNaN: true }),
      fc.double({ min: 1e6, max: 1e10, noNaN: true }),
    );
    fc.assert(
      fc.property(figures, figures, figures, fc.constantFrom(...OBJECTIVES), (a, b, c, objective) => {
        const ps = [pred('precopy', ...a), pred('hybrid', ...b), pred('postcopy', ...c)];
        const chosen = ps.find((p) => p.technique === choose(ps, objective).technique)!;
        const best = Math.min(...ps.map((p) => value(p, objective)));
        expect(value(chosen, objective)).toBeLessThanOrEqual(best + margin(best, objective));
        for (const p of ps) {
          if (safety[p.technique] < safety[chosen.technique]) {
            expect(value(p, objective)).toBeGreaterThan(best + margin(best, objective));
          }
        }
      }),
    );
  });
});

describe('choose: ties go to the safer technique', () => {
  it('downtime: within 10 % of the best → pre-copy', () => {
    const ps = [pred('precopy', 109, 9000, 9e9), pred('hybrid', 300, 1, 1), pred('postcopy', 100, 1, 1)];
    const c = choose(ps, 'downtime');
    expect(c.technique).toBe('precopy');
    expect(c.why).toMatch(/^precopy and postcopy are predicted within the margin on downtime; the safer is precopy /);
    // Just outside: post-copy.
    ps[0] = pred('precopy', 111, 9000, 9e9);
    expect(choose(ps, 'downtime').technique).toBe('postcopy');
  });

  it('downtime: within 5 ms when 10 % is less', () => {
    expect(choose([pred('precopy', 24.9, 1, 1), pred('postcopy', 20, 1, 1)], 'downtime').technique).toBe('precopy');
    expect(choose([pred('precopy', 25.1, 1, 1), pred('postcopy', 20, 1, 1)], 'downtime').technique).toBe('postcopy');
  });

  it('total time: within 5 %', () => {
    expect(choose([pred('precopy', 1, 1049, 1), pred('postcopy', 1, 1000, 1)], 'total-time').technique).toBe('precopy');
    expect(choose([pred('precopy', 1, 1051, 1), pred('postcopy', 1, 1000, 1)], 'total-time').technique).toBe(
      'postcopy',
    );
  });

  it('bytes: within 2 %', () => {
    expect(choose([pred('precopy', 1, 1, 101.9e6), pred('hybrid', 1, 1, 100e6)], 'bytes').technique).toBe('precopy');
    expect(choose([pred('precopy', 1, 1, 102.1e6), pred('hybrid', 1, 1, 100e6)], 'bytes').technique).toBe('hybrid');
  });

  it('hybrid before post-copy; pre-copy before both', () => {
    const hybPost = [pred('precopy', 900, 1, 1), pred('hybrid', 52, 1, 1), pred('postcopy', 50, 1, 1)];
    expect(choose(hybPost, 'downtime').technique).toBe('hybrid');
    expect(choose([...hybPost].reverse(), 'downtime').technique).toBe('hybrid');
    const three = [pred('postcopy', 50, 1, 1), pred('hybrid', 51, 1, 1), pred('precopy', 53, 1, 1)];
    const c = choose(three, 'downtime');
    expect(c.technique).toBe('precopy');
    expect(c.why).toContain('the safer is precopy');
  });
});

describe('choose: a downtime ceiling', () => {
  it('only techniques under it compete', () => {
    // Pre-copy is fastest but 900 ms down; under 500 ms, hybrid (9 s) loses to post-copy (7 s).
    expect(choose(ALL, 'total-time').technique).toBe('precopy');
    expect(choose(ALL, 'total-time', 500).technique).toBe('postcopy');
    expect(choose(ALL, 'bytes', 500).technique).toBe('hybrid');
    expect(choose(ALL, 'bytes', 400).technique).toBe('hybrid'); // at the ceiling counts as under
    expect(choose(ALL, 'bytes', 399).technique).toBe('postcopy');
    expect(choose(ALL, 'bytes', 900).technique).toBe('precopy');
    expect(choose(ALL, 'bytes', 500).why).toMatch(/^best predicted bytes: hybrid /);
  });

  it('when nothing is under it: the least downtime, and `why` says the ceiling cannot be met', () => {
    const c = choose(ALL, 'total-time', 20);
    expect(c.technique).toBe('postcopy');
    expect(c.objective).toBe('total-time');
    expect(c.why).toMatch(
      /^no technique is predicted under the 20 ms downtime ceiling; the least downtime is postcopy /,
    );
    const slow = [pred('precopy', 900, 1, 1), pred('hybrid', 400, 1, 1), pred('postcopy', 800, 1, 1)];
    expect(choose(slow, 'bytes', 100).technique).toBe('hybrid');
  });

  it('no predictions: an error', () => {
    expect(() => choose([], 'downtime')).toThrow(/no predictions/);
  });
});

describe('choose: why', () => {
  it('names the chosen technique with its figures, then the others', () => {
    const ps = [
      { ...pred('precopy', 123.4, 4500, 812.34e6), rounds: 1, switchover: 'nothing-dirty' as const },
      pred('hybrid', 400, 9000, 500e6),
      pred('postcopy', 50, 7000, 800e6),
    ];
    const c = choose(ps, 'total-time');
    expect(c.technique).toBe('precopy');
    expect(c.why).toBe(
      'best predicted total-time: precopy 123 ms down, 4.50 s total, 812.3 MB, 1 round, nothing-dirty ' +
        '(vs hybrid 400 ms down, 9.00 s total, 500.0 MB, 3 rounds, converged; ' +
        'postcopy 50 ms down, 7.00 s total, 800.0 MB)',
    );
  });
});
