/**
 * The guest's dirty curve from a dirty-rate measurement with checkpoints: W(t), the distinct
 * bytes a guest dirties in a window of t seconds. A pre-copy round of t seconds leaves W(t)
 * bytes to send again, so this curve — not one rate — is what the model needs (Clark et al.'s
 * "writable working set"; Akoush et al. model it the same way).
 *
 * The form fitted: W(t) = S × (1 − e^(−r·t/S)), uniform random writes at r bytes/s over a set of
 * S bytes — the coupon collector's curve. A streaming writer (S large) is a straight line r·t; a
 * hot set written faster than it is re-read saturates at S. The fit: for each S on a grid from
 * the largest fraction seen up to 100 memories (a straight line, for a streaming writer), the r
 * with the least squared error (a golden-section search), and the S whose best r errs least
 * wins; an S at the grid's end is a straight line, reported as no bound (wssBytes null). With no
 * page changed the rate is 0; when every point sees the same count, the set saturated before the
 * first checkpoint: S is that count and r is at least the first point's slope.
 */
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import type { DirtyCurve } from './types.ts';

/** Candidate working-set sizes, from the largest fraction seen to MAX_SET memories. */
const GRID = 400;
/** The largest working set tried, in memories: past it the curve is a straight line within 1 %. */
const MAX_SET = 100;

/** The sum of squared errors of the curve (S = set, rate r) at the points. */
function sseOf(points: readonly { t: number; f: number }[], set: number, rate: number): number {
  return points.reduce((sum, p) => sum + (Math.min(1, set * -Math.expm1((-rate * p.t) / set)) - p.f) ** 2, 0);
}

/** For a set S, the rate with the least squared error: golden-section search on log r (the error is unimodal in r). */
function bestRate(
  points: readonly { t: number; f: number }[],
  set: number,
  low: number,
  high: number,
): { rate: number; sse: number } {
  const phi = (Math.sqrt(5) - 1) / 2;
  let a = Math.log(low);
  let b = Math.log(high);
  for (let k = 0; k < 60; k++) {
    const c = b - phi * (b - a);
    const d = a + phi * (b - a);
    if (sseOf(points, set, Math.exp(c)) <= sseOf(points, set, Math.exp(d))) b = d;
    else a = c;
  }
  const rate = Math.exp((a + b) / 2);
  return { rate, sse: sseOf(points, set, rate) };
}

/** W(t): distinct bytes dirtied in a window of `seconds` under `curve`, at most `memoryBytes`. */
export function dirtiedIn(curve: DirtyCurve, seconds: number, memoryBytes: number): number {
  if (seconds <= 0 || curve.rateBps <= 0) return 0;
  const linear = curve.rateBps * seconds;
  if (curve.wssBytes === null) return Math.min(memoryBytes, linear);
  return Math.min(memoryBytes, curve.wssBytes * -Math.expm1(-linear / curve.wssBytes));
}

/** Fit the curve to a measurement; without checkpoints, its one rate as a straight line. */
export function fitDirtyCurve(m: DirtyRateMeasurement): DirtyCurve {
  const points = (m.curve ?? [{ windowMs: m.windowMs, pagesChanged: m.pagesChanged }])
    .filter((p) => p.windowMs > 0)
    .map((p) => ({ t: p.windowMs / 1000, f: p.pagesChanged / m.pagesSampled }));
  const maxF = Math.max(0, ...points.map((p) => p.f));
  if (maxF === 0) return { rateBps: 0, wssBytes: null };
  const first = points[0]!;
  if (points.length === 1) return { rateBps: (first.f * m.memoryBytes) / first.t, wssBytes: null };
  if (points.every((p) => p.f === maxF)) {
    // Saturated before the first checkpoint: the slope is at least what the first point shows.
    return { rateBps: (maxF * m.memoryBytes) / first.t, wssBytes: maxF * m.memoryBytes };
  }
  let best = { sse: Infinity, rate: 0, set: 1 };
  const slopes = points.filter((p) => p.f > 0).map((p) => p.f / p.t);
  const lowRate = Math.min(...slopes) / 2;
  const highRate = Math.max(...slopes) * 1000;
  for (let i = 0; i <= GRID; i++) {
    // S from just above the largest fraction seen to MAX_SET memories (a straight line), log-spaced.
    const set = maxF * 1.0001 * (MAX_SET / maxF) ** (i / GRID);
    const { rate, sse } = bestRate(points, set, lowRate, highRate);
    if (sse < best.sse) best = { sse, rate, set };
  }
  // At the grid's end the curve is a straight line: no bound seen. (A set of more than memory
  // is kept: W(t) is capped at memory anyway, and the curve's bend says how fast it gets there.)
  if (best.set >= MAX_SET / 2) return { rateBps: best.rate * m.memoryBytes, wssBytes: null };
  return { rateBps: best.rate * m.memoryBytes, wssBytes: best.set * m.memoryBytes };
}
