/**
 * The downtime formula (ARCHITECTURE.md §6, a contract): source vCPU paused → destination vCPU
 * resumed, measured on the source's clock alone. The destination resumes its vCPU and then
 * sends Resumed, so Resumed's trip back is the only part of [pause, Resumed seen] after the
 * resume. Its one-way delay is half the RTT of the Handoff → Resumed exchange itself, less the
 * time the destination says it held Handoff before resuming: a measurement taken at that very
 * moment, on that connection — never a comparison of two clocks.
 */

export interface HandoffTiming {
  /** performance.now() when the vCPU paused. */
  pausedAt: number;
  /** performance.now() when Handoff was sent. */
  handoffSentAt: number;
  /** performance.now() when Resumed arrived. */
  resumedSeenAt: number;
  /** What the destination says passed between receiving Handoff and its vCPU running. */
  destHoldMs: number;
}

export interface DowntimeFigures {
  downtimeMs: number;
  /** The RTT of the Handoff → Resumed exchange without the destination's hold. */
  rttMs: number;
}

export function downtimeFrom(t: HandoffTiming): DowntimeFigures {
  const hold = Number.isFinite(t.destHoldMs) && t.destHoldMs > 0 ? t.destHoldMs : 0;
  const rttMs = Math.max(0, t.resumedSeenAt - t.handoffSentAt - hold);
  const downtimeMs = Math.max(0, t.resumedSeenAt - t.pausedAt - rttMs / 2);
  return { downtimeMs, rttMs };
}
