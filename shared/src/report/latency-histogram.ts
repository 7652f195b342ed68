/**
 * A latency histogram in power-of-two microsecond buckets, as QEMU 10.1 reports post-copy fault
 * latency (`postcopy-latency-dist`): bucket i counts latencies in [2^i, 2^(i+1)) µs, bucket 0 also
 * everything under 1 µs. Pure; built on the destination from every fault it measured, sent to the
 * source in Complete's statistics, and checked there (checkHistogram) before it joins the report.
 */

export interface LatencyHistogram {
  /** Each bucket's lower bound, µs: 1, 2, 4, … (bucket i covers [bucketsUs[i], 2 × bucketsUs[i])). */
  bucketsUs: number[];
  counts: number[];
}

/** At most this many buckets: 2^31 µs is over half an hour; a slower fault lands in the last. */
export const MAX_HISTOGRAM_BUCKETS = 32;

/** The histogram of `latenciesMs`, up to its highest non-empty bucket; null with none. */
export function latencyHistogram(latenciesMs: readonly number[]): LatencyHistogram | null {
  if (latenciesMs.length === 0) return null;
  const counts: number[] = [];
  for (const ms of latenciesMs) {
    const us = ms * 1000;
    const bucket = us < 1 ? 0 : Math.min(MAX_HISTOGRAM_BUCKETS - 1, Math.floor(Math.log2(us)));
    while (counts.length <= bucket) counts.push(0);
    counts[bucket]! += 1;
  }
  return { bucketsUs: counts.map((_, i) => 2 ** i), counts };
}

/**
 * `value` as a histogram if it is a well-formed one (it comes from the peer: hostile until
 * checked) — buckets 1, 2, 4, … µs, at most MAX_HISTOGRAM_BUCKETS, whole non-negative counts — else null.
 */
export function checkHistogram(value: unknown): LatencyHistogram | null {
  if (typeof value !== 'object' || value === null) return null;
  const { bucketsUs, counts } = value as Record<string, unknown>;
  if (!Array.isArray(bucketsUs) || !Array.isArray(counts)) return null;
  if (bucketsUs.length !== counts.length || counts.length === 0 || counts.length > MAX_HISTOGRAM_BUCKETS) return null;
  const ok =
    bucketsUs.every((b, i) => b === 2 ** i) &&
    counts.every((c) => typeof c === 'number' && Number.isSafeInteger(c) && c >= 0);
  return ok ? { bucketsUs: bucketsUs as number[], counts: counts as number[] } : null;
}
