/**
 * What this agent measured of its link to each destination, from the migrations it made there:
 * round 0's rate, the resend rate (later rounds and the stop-and-copy), and the RTT. `--mode
 * auto` uses it to choose before round 0 — the only time a pure post-copy is still possible —
 * instead of waiting for round 0 to measure the link. A pure function turns a report into a
 * sample; the map is the agent's (agent/src/outgoing-migrations.ts).
 */
import type { MigrationReport } from '@livemig/shared/report';

/** A measurement of the link to one destination. */
export interface LinkSample {
  bandwidthBps: number;
  resendBandwidthBps?: number;
  rttMs: number;
  /**
   * Setup of the last pure post-copy to this destination (--mode postcopy): it includes the
   * destination's vCPU start, which a pre-copy hides in round 0. Kept from the last such migration.
   */
  postcopySetupMs?: number;
  /** When it was measured (the migration's end), ms since the epoch. */
  at: number;
  /** The migration it came from. */
  migrationId: string;
}

/** Rounds too small to time say nothing of the link (bandwidth.ts's test, with round 0 at 8 MiB). */
const MIN_ROUND0_BYTES = 8 << 20;
const MIN_BYTES = 1 << 20;
const MIN_MS = 5;

/**
 * The link as a completed migration measured it, merged into what was known (`before`), or
 * `before` when it measured too little: a pure post-copy measures no rate, only its setup.
 */
export function linkSampleOf(report: MigrationReport, before?: LinkSample): LinkSample | undefined {
  if (report.outcome === 'completed' && report.mode === 'postcopy' && report.rounds.length === 0) {
    return before ? { ...before, postcopySetupMs: report.times.setupMs } : undefined;
  }
  const sample = roundSample(report);
  if (!sample) return before;
  return before?.postcopySetupMs === undefined ? sample : { ...sample, postcopySetupMs: before.postcopySetupMs };
}

function roundSample(report: MigrationReport): LinkSample | undefined {
  const round0 = report.rounds[0];
  if (report.outcome !== 'completed' || !round0 || round0.bytes < MIN_ROUND0_BYTES || round0.ms < MIN_MS) {
    return undefined;
  }
  const resends = report.rounds.slice(1).filter((r) => r.bytes >= MIN_BYTES && r.ms >= MIN_MS);
  const resendMs = resends.reduce((sum, r) => sum + r.ms, 0);
  return {
    bandwidthBps: round0.bandwidthBps,
    ...(resends.length === 0
      ? {}
      : { resendBandwidthBps: (resends.reduce((sum, r) => sum + r.bytes, 0) / resendMs) * 1000 }),
    rttMs: report.times.rttMs ?? 0,
    at: Date.parse(report.times.endedAt),
    migrationId: report.migrationId,
  };
}
