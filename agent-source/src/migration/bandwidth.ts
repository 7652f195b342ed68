/**
 * The bandwidth the switchover rule divides by: a pure function of the rounds measured so far.
 * A round too small to time (under 1 MiB or 5 ms: timer and socket-buffer noise dominate) says
 * nothing about the link, so the best measured round stands in; with none, the cap (or 1 GB/s,
 * an optimistic guess that keeps rule 2 from firing on no evidence at 1 round). The live figures
 * (`query-migrate`'s rate and ETA) use the same test of a measurement but never guess.
 */
import type { RoundReport } from '@livemig/shared/report';

/** Rounds smaller than this many bytes or milliseconds are not measurements of the link. */
export const MIN_MEASURED_BYTES = 1 << 20;
export const MIN_MEASURED_MS = 5;
/** Used when nothing was measured and no cap is set. */
export const UNMEASURED_BANDWIDTH_BPS = 1e9;

function measured(round: SendSample): boolean {
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

/** What one stretch of sending moved: pages, wire bytes, over how long. A RoundReport is one. */
export interface SendSample {
  pages: number;
  bytes: number;
  ms: number;
}

/**
 * The measurement `query-migrate`'s rate and ETA stand on: the stretch in progress (the round
 * so far, or the post-copy push so far) once it measured the link, else the last round that
 * did; undefined when nothing has — unknown, not a guess (unlike bandwidthEstimate, which
 * must have a number for the switchover rule).
 */
export function liveSample(current: SendSample | undefined, rounds: readonly SendSample[]): SendSample | undefined {
  if (current && measured(current)) return current;
  for (let i = rounds.length - 1; i >= 0; i--) {
    const round = rounds[i]!;
    if (measured(round)) return round;
  }
  return undefined;
}

/** Milliseconds to send `remainingBytes` of pages at the page rate `sample` measured; undefined without pages to go by. */
export function etaMs(remainingBytes: number, sample: SendSample | undefined, pageSize: number): number | undefined {
  if (remainingBytes === 0) return 0;
  if (!sample || sample.pages === 0 || sample.ms <= 0) return undefined;
  return (remainingBytes / pageSize / sample.pages) * sample.ms;
}
