/**
 * How long the dashboard waits before reconnecting to an agent: exponential from 250 ms to 5 s,
 * ±20% at random so dashboards that lost the same agent do not all knock at the same instant when
 * it comes back. Pure: the random draw is an argument.
 */

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Spread around the delay, 0..1 (0.2: ±20%). */
  jitter: number;
}

export const RECONNECT_BACKOFF: Readonly<Backoff> = Object.freeze({
  initialMs: 250,
  maxMs: 5000,
  factor: 2,
  jitter: 0.2,
});

/** The delay before attempt `attempt` (0 = the first retry); `random` is a draw in [0, 1). */
export function backoffMs(attempt: number, random: number, backoff: Backoff = RECONNECT_BACKOFF): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** Math.max(0, attempt));
  return Math.round(base * (1 - backoff.jitter + 2 * backoff.jitter * random));
}
