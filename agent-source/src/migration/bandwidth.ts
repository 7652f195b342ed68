/**
 * The bandwidth the switchover rule divides by: a pure function of the rounds measured so far.
 * A round too small to time (under 1 MiB or 5 ms: timer and socket-buffer noise dominate) says
 * nothing about the link, so the best measured round stands in; with none, the cap (or 1 GB/s,
 * an optimistic guess that keeps rule 2 from firing on no evidence at 1 round).
 */
import type { RoundReport } from '@livemig/shared/report';

/** Rounds smaller than this many bytes or milliseconds are not measurements of the link. */
export const MIN_MEASURED_BYTES = 1 << 20;
export const MIN_MEASURED_MS = 5;
/** Used when nothing was measured and no cap is set. */
export const UNMEASURED_BANDWIDTH_BPS = 1e9;

function measured(round: RoundReport): boolean {
  return round.bytes >= MIN_MEASURED_BYTES && round.ms >= MIN_MEASURED_MS;
}

/** Bytes per second for the downtime estimate: the last round's if it measured the link, else the best that did. */
export function bandwidthEstimate(rounds: readonly RoundReport[], capBps: number | null): number {
  const last = rounds[rounds.length - 1];
  if (last && measured(last)) return last.bandwidthBps;
  const good = rounds.filter(measured);
  if (good.length) return Math.max(...good.map((r) => r.bandwidthBps));
  return capBps ?? UNMEASURED_BANDWIDTH_BPS;
}

/** The bandwidth `query-migrate` shows: the last round's, or during round 0 what it achieved so far. */
export function liveBandwidthBps(last: RoundReport | undefined, bytesSoFar: number, sendingMs: number): number {
  if (last) return last.bandwidthBps;
  return sendingMs > 0 ? (bytesSoFar / sendingMs) * 1000 : 0;
}
