/**
 * Checks for qualitative claims over measured figures (test/integration/survey-claims.integration.test.ts).
 * Each check takes the figures of several runs and returns a Verdict whose message names the claim,
 * prints every figure it judged and states the rule, so a failure reads
 *
 *   claim: pre-copy bytes on the wire grow with the dirty rate — idle 64.09 MiB, low 83.10 MiB,
 *   high 63.00 MiB; rule: each ≥ 1.02 × the one before
 *
 * and a test asserts `expect(verdict.ok, verdict.message).toBe(true)`. Pure: no I/O, no vitest.
 */

/** A measured value under the label of the run it came from ("idle", "25 MB/s"). */
export interface Figure {
  label: string;
  value: number;
}

/** Whether a claim held, and what to print about it either way. */
export interface Verdict {
  ok: boolean;
  /** `claim: NAME — FIGURES; rule: RULE`. */
  message: string;
}

/** How a figure is printed. */
export type Unit = 'MiB' | 'ms' | 'x';

/** A value with its unit: bytes as MiB with two decimals, times with one, ratios with two. */
export function format(value: number, unit: Unit): string {
  switch (unit) {
    case 'MiB':
      return `${(value / 2 ** 20).toFixed(2)} MiB`;
    case 'ms':
      return `${value.toFixed(1)} ms`;
    case 'x':
      return `${value.toFixed(2)}×`;
  }
}

/** "idle 64.09 MiB, low 83.10 MiB, high 138.40 MiB". */
export function show(figures: readonly Figure[], unit: Unit): string {
  return figures.map((f) => `${f.label} ${format(f.value, unit)}`).join(', ');
}

/** The median (mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The verdict on `claim` with these figures and this rule. */
export function verdict(ok: boolean, claim: string, figures: string, rule: string): Verdict {
  return { ok, message: `claim: ${claim} — ${figures}; rule: ${rule}` };
}

/**
 * The figures, in the order given, grow: each is at least `1 + minStep` times the one before
 * (minStep > 0 asks for growth larger than the noise, not just any).
 */
export function grows(claim: string, figures: readonly Figure[], unit: Unit, minStep: number): Verdict {
  const ok = figures.every((f, i) => i === 0 || f.value >= figures[i - 1]!.value * (1 + minStep));
  return verdict(ok, claim, show(figures, unit), `each ≥ ${(1 + minStep).toFixed(2)} × the one before`);
}

/** Tolerance of `flat`: the spread allowed is the larger of `absolute` and `relative` × the median. */
export interface FlatTolerance {
  absolute: number;
  relative: number;
}

/** The figures are flat: max − min ≤ max(absolute, relative × median). */
export function flat(claim: string, figures: readonly Figure[], unit: Unit, tolerance: FlatTolerance): Verdict {
  const values = figures.map((f) => f.value);
  const spread = Math.max(...values) - Math.min(...values);
  const mid = median(values);
  const allowed = Math.max(tolerance.absolute, tolerance.relative * mid);
  const rule =
    `max − min = ${format(spread, unit)} ≤ max(${format(tolerance.absolute, unit)}, ` +
    `${Math.round(tolerance.relative * 100)} % of the median ${format(mid, unit)}) = ${format(allowed, unit)}`;
  return verdict(figures.length > 0 && spread <= allowed, claim, show(figures, unit), rule);
}

/** `value` lies strictly between `low` and `high`. */
export function between(claim: string, value: Figure, low: Figure, high: Figure, unit: Unit): Verdict {
  const ok = low.value < value.value && value.value < high.value;
  return verdict(ok, claim, show([low, value, high], unit), `${low.label} < ${value.label} < ${high.label}`);
}

/** `value` is below `bound`. */
export function below(claim: string, value: Figure, bound: Figure, unit: Unit): Verdict {
  return verdict(value.value < bound.value, claim, show([value, bound], unit), `${value.label} < ${bound.label}`);
}

/**
 * `actual` is close to `expected`: their ratio lies in [min, max]. `context` (other figures that
 * explain the two) is printed with them.
 */
export function near(
  claim: string,
  actual: Figure,
  expected: Figure,
  unit: Unit,
  range: { min: number; max: number },
  context = '',
): Verdict {
  const ratio = actual.value / expected.value;
  const ok = ratio >= range.min && ratio <= range.max;
  const figures = `${show([actual, expected], unit)}, ratio ${format(ratio, 'x')}${context ? ` (${context})` : ''}`;
  return verdict(ok, claim, figures, `${actual.label} ÷ ${expected.label} in [${range.min}, ${range.max}]`);
}
