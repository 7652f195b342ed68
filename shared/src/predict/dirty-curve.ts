/**
 * The guest's dirty curve from a dirty-rate measurement with checkpoints: W(t), the distinct
 * bytes a guest dirties in a window of t seconds. A pre-copy round of t seconds leaves W(t)
 * bytes to send again, so this curve — not one rate — is what the model needs (Clark et al.'s
 * "writable working set"; Akoush et al. model it the same way).
 *
 * The form fitted: W(t) = S × (1 − e^(−r·t/S)), uniform random writes at r bytes/s over a set of
 * S bytes — the coupon collector's curve. A streaming writer (S large) is a straight line r·t; a
 * hot set written faster than it is re-read saturates at S. The fit: for each S on a grid from
 * the largest fraction seen up to all of memory, every point gives its own r (solving the curve
 * for r), their mean is the r for that S, and the S with the least squared error wins. With no
 * page changed the rate is 0; when every point sees the same count, the set saturated before the
 * first checkpoint: S is that count and r is at least the first point's slope.
 */
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import type { DirtyCurve } from './types.ts';

/** Candidate working-set sizes between the smallest plausible and all of memory. */
const GRID = 400;

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
  for (let i = 0; i <= GRID; i++) {
    // S from just above the largest fraction seen to 1 (all memory), log-spaced.
    const set = maxF * (1 / maxF) ** (i / GRID) * (i === 0 ? 1.0001 : 1);
    const rates = points.filter((p) => p.f > 0).map((p) => (-set * Math.log1p(-Math.min(p.f / set, 0.9999))) / p.t);
    const rate = rates.reduce((a, b) => a + b, 0) / rates.length;
    const sse = points.reduce((sum, p) => sum + (set * -Math.expm1((-rate * p.t) / set) - p.f) ** 2, 0);
    if (sse < best.sse) best = { sse, rate, set };
  }
  return { rateBps: best.rate * m.memoryBytes, wssBytes: best.set * m.memoryBytes };
}
