/**
 * `--mode auto`'s dirty curve (agent-source/src/migration/auto.ts curveFrom): the measurement
 * taken at start, with round 0's own count (every page, no sampling) as one more point when
 * given — scaled to the measurement's sample and put in window order.
 */
import { describe, expect, it } from 'vitest';
import { curveFrom } from '../../../agent-source/src/migration/auto.ts';
import { dirtiedIn, fitDirtyCurve } from '../../../shared/src/predict/index.ts';
import type { DirtyRateMeasurement } from '../../../shared/src/vm/dirty-rate.ts';

const MiB = 1024 ** 2;
const M = 256 * MiB;
const PAGES = M / 4096;
const SAMPLED = 4096;

const truth = (S: number, r: number, seconds: number) => Math.min(M, S * -Math.expm1((-r * seconds) / S));

/** The start measurement as start-dirty-rate.ts takes it: 1 s, checkpoints at 62.5 … 500 ms. */
function measured(S: number, r: number, windows = [62.5, 125, 250, 500, 1000]): DirtyRateMeasurement {
  const curve = windows.map((w) => ({ windowMs: w, pagesChanged: (truth(S, r, w / 1000) / M) * SAMPLED }));
  const last = curve[curve.length - 1]!;
  return {
    dirtyRateMBps: 0,
    standardErrorMBps: 0,
    pagesSampled: SAMPLED,
    pagesChanged: last.pagesChanged,
    windowMs: last.windowMs,
    startedAt: 0,
    memoryBytes: M,
    curve,
  };
}

/** Round 0 of `ms` under the same curve: every page counted. */
const round0 = (S: number, r: number, ms: number) => ({
  ms,
  dirtyPages: (truth(S, r, ms / 1000) / M) * PAGES,
  pageCount: PAGES,
});

const rel = (got: number, want: number) => Math.abs(got / want - 1);

describe('curveFrom', () => {
  it('nothing measured: an idle curve', () => {
    expect(curveFrom(null, undefined, M)).toEqual({ rateBps: 0, wssBytes: null });
  });

  it('round 0 alone: a straight line through its count', () => {
    // 1/8 of the pages dirtied during a 2 s round 0: M/8 in 2 s.
    const c = curveFrom(null, { ms: 2000, dirtyPages: PAGES / 8, pageCount: PAGES }, M);
    expect(c.wssBytes).toBeNull();
    expect(c.rateBps).toBeCloseTo(M / 8 / 2, 3);
    expect(curveFrom(null, { ms: 2000, dirtyPages: 0, pageCount: PAGES }, M)).toEqual({ rateBps: 0, wssBytes: null });
  });

  it('the measurement alone: its fit', () => {
    const m = measured(0.1 * M, 0.2 * M);
    const c = curveFrom(m, undefined, M);
    expect(c).toEqual(fitDirtyCurve(m));
    expect(rel(c.wssBytes!, 0.1 * M)).toBeLessThan(0.015);
    expect(rel(c.rateBps, 0.2 * M)).toBeLessThan(0.03);
  });

  it('a measurement without checkpoints and no round 0: a straight line', () => {
    const m: DirtyRateMeasurement = { ...measured(0.1 * M, 0.2 * M), curve: undefined };
    const c = curveFrom(m, undefined, M);
    expect(c.wssBytes).toBeNull();
    expect(c.rateBps).toBeCloseTo((m.pagesChanged / SAMPLED) * M, 3);
  });

  it('round 0 joins the curve, scaled from all pages to the sample: the same curve comes back', () => {
    // A set of 30 % of memory at 0.1 M/s: over the measurement's 1 s it has barely begun to
    // bend; round 0's 6 s shows it saturating.
    const S = 0.3 * M;
    const r = 0.1 * M;
    const c = curveFrom(measured(S, r), round0(S, r, 6000), M);
    expect(rel(c.wssBytes!, S)).toBeLessThan(0.015);
    expect(rel(c.rateBps, r)).toBeLessThan(0.03);
    expect(rel(dirtiedIn(c, 6, M), truth(S, r, 6))).toBeLessThan(0.03);
  });

  it('round 0 counts: a round 0 that saw more than the curve predicts moves the fit', () => {
    // Round 0 says 1.5 × what the measurement's curve would: the fit must move.
    const S = 0.3 * M;
    const r = 0.1 * M;
    const m = measured(S, r);
    const alone = curveFrom(m, undefined, M);
    const off = { ...round0(S, r, 6000) };
    off.dirtyPages *= 1.5;
    const joined = curveFrom(m, off, M);
    expect(joined).not.toEqual(alone);
    expect(dirtiedIn(joined, 6, M)).toBeGreaterThan(dirtiedIn(alone, 6, M) * 1.1);
  });

  it('in window order: a round 0 shorter than the first checkpoint becomes the first point', () => {
    // A set saturated before every point (the same count everywhere): r is the first point's
    // slope — round 0's, 40 ms, when it is the shortest.
    const S = M / 8;
    const flat: DirtyRateMeasurement = {
      ...measured(S, 1000 * M),
      curve: [250, 500, 1000].map((w) => ({ windowMs: w, pagesChanged: SAMPLED / 8 })),
      pagesChanged: SAMPLED / 8,
    };
    const c = curveFrom(flat, { ms: 40, dirtyPages: PAGES / 8, pageCount: PAGES }, M);
    expect(c.wssBytes).toBe(S);
    expect(c.rateBps).toBeCloseTo(S / 0.04, 0);
    // Longer than the rest: last, and the slope is still the 250 ms point's.
    const late = curveFrom(flat, { ms: 3000, dirtyPages: PAGES / 8, pageCount: PAGES }, M);
    expect(late.rateBps).toBeCloseTo(S / 0.25, 0);
  });

  it('a measurement cut short (one checkpoint) still takes round 0', () => {
    const S = 0.05 * M;
    const r = 0.1 * M;
    const m = measured(S, r, [62.5]);
    const c = curveFrom(m, round0(S, r, 3000), M);
    // Two points, the second saturated: S is seen.
    expect(c.wssBytes).not.toBeNull();
    expect(rel(c.wssBytes!, S)).toBeLessThan(0.02);
  });

  // Found by this test and fixed: a measurement without checkpoints used to drop round 0's point.
  it('a measurement without checkpoints still takes round 0 as a second point', () => {
    const S = 0.05 * M;
    const r = 0.1 * M;
    const m: DirtyRateMeasurement = { ...measured(S, r, [62.5, 250]), curve: undefined };
    m.windowMs = 250;
    m.pagesChanged = (truth(S, r, 0.25) / M) * SAMPLED;
    const c = curveFrom(m, round0(S, r, 3000), M);
    expect(c.wssBytes).not.toBeNull();
  });
});
