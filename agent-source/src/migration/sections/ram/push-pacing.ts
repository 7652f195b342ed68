/**
 * Pacing post-copy's background push under --max-postcopy-bandwidth (QEMU's
 * max-postcopy-bandwidth). A capped push that still wrote 1 MiB batches would put each batch on
 * the link at once, and a fault's answer on the other connection waits behind whatever of it sits
 * in the bottleneck's queue: measured on the lab's lan profile (1 Gbit/s, one tbf queue per
 * host), a median backlog of 137 KiB and peaks of 1.7 MiB, and a fault latency p99 of 6.1 ms
 * against an RTT of 0.38 ms (bench/postcopy-lan.ts). Paced, the push goes in batches of what the
 * cap sends in PACED_BATCH_MS, with a token bucket whose burst is one batch: below the link's
 * rate the queue drains between batches. Pure.
 */

/** The time one paced batch takes at the cap, ms (timers wake about every millisecond). */
export const PACED_BATCH_MS = 2;

/** The fewest pages a paced batch carries (32 KiB at 4 KiB pages): below that the per-batch cost dominates. */
export const MIN_PACED_BATCH_PAGES = 8;

/** Pages per background batch at `rateBps` (null: `maxPages`, unpaced), in [MIN_PACED_BATCH_PAGES, maxPages]. */
export function pacedBatchPages(rateBps: number | null, pageSize: number, maxPages: number): number {
  if (rateBps === null) return maxPages;
  const pages = Math.floor((rateBps * PACED_BATCH_MS) / 1000 / pageSize);
  return Math.min(maxPages, Math.max(MIN_PACED_BATCH_PAGES, pages));
}
