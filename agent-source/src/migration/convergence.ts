/**
 * When does pre-copy stop iterating? A pure predicate over what the last rounds measured, so
 * it can be tested with tables of cases. The rules, in the order they are checked:
 *
 *  1. nothing pending                                    → switch over ('nothing-dirty')
 *  2. expected downtime ≤ downtime limit                 → switch over ('converged')
 *     expected downtime = pending bytes (summed over every section) ÷ bandwidth measured over
 *     the last round — QEMU's `threshold_size = bandwidth × downtime_limit`, turned around
 *  3. the round count reached max-rounds                 → switch over ('max-rounds')
 *  4. the pending set has not shrunk for 3 rounds in a row → switch over ('not-shrinking'),
 *     unless auto-converge is still raising the throttle (throttle.ts): the set keeps its size
 *     until the throttle bites
 *  otherwise                                             → another round
 *
 * Rules 3 and 4 mean the VM did not converge: the stop-and-copy that follows will take longer
 * than the limit, and the report says so. (Auto-converge, dirty-limit and post-copy are the cures.)
 */
import type { SwitchoverReason } from '@livemig/shared/report';

/** How many rounds without the dirty set shrinking make pre-copy give up iterating. */
export const NOT_SHRINKING_ROUNDS = 3;

export interface ConvergenceInput {
  /** Rounds completed so far (round 0 counts). */
  roundsDone: number;
  /** Bytes pending (every section's pending() summed) after each completed round, oldest first. */
  pendingBytesAfter: readonly number[];
  /** Bytes per second measured over the last round. */
  bandwidthBps: number;
  downtimeLimitMs: number;
  maxRounds: number;
  /** auto-converge is raising the throttle (throttle.ts throttleRising): rule 4 waits. @default false */
  throttleRising?: boolean;
}

export interface ConvergenceDecision {
  /** undefined: keep iterating. */
  switchover: Exclude<SwitchoverReason, 'postcopy' | 'shutdown'> | undefined;
  /** What the downtime would be if it switched over now (ms). */
  expectedDowntimeMs: number;
}

/** Expected stop-and-copy time for `pendingBytes` at `bandwidthBps`; Infinity when nothing was measured. */
export function expectedDowntimeMs(pendingBytes: number, bandwidthBps: number): number {
  if (pendingBytes === 0) return 0;
  if (!(bandwidthBps > 0)) return Number.POSITIVE_INFINITY;
  return (pendingBytes / bandwidthBps) * 1000;
}

export function decideSwitchover(input: ConvergenceInput): ConvergenceDecision {
  const pending = input.pendingBytesAfter[input.pendingBytesAfter.length - 1] ?? Number.POSITIVE_INFINITY;
  const expected = expectedDowntimeMs(pending, input.bandwidthBps);
  if (pending === 0) return { switchover: 'nothing-dirty', expectedDowntimeMs: 0 };
  if (expected <= input.downtimeLimitMs) return { switchover: 'converged', expectedDowntimeMs: expected };
  if (input.roundsDone >= input.maxRounds) return { switchover: 'max-rounds', expectedDowntimeMs: expected };
  if (!input.throttleRising && stoppedShrinking(input.pendingBytesAfter))
    return { switchover: 'not-shrinking', expectedDowntimeMs: expected };
  return { switchover: undefined, expectedDowntimeMs: expected };
}

/**
 * True when each of the last NOT_SHRINKING_ROUNDS rounds left at least as many pending bytes as
 * the best (smallest) count seen before them. Round 0's count is excluded: it measures the
 * dirtying during the long first pass, not the steady state.
 */
function stoppedShrinking(pendingAfter: readonly number[]): boolean {
  const steady = pendingAfter.slice(1);
  if (steady.length <= NOT_SHRINKING_ROUNDS) return false;
  const before = steady.slice(0, steady.length - NOT_SHRINKING_ROUNDS);
  const best = Math.min(...before);
  return steady.slice(-NOT_SHRINKING_ROUNDS).every((count) => count >= best);
}
