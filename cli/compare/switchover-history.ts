/**
 * The post-copy switchover's cost as this run measures it, link by link (pure). The idle
 * calibration migrations measure it first, but the cells' switchovers cost more than theirs —
 * 5–11 ms against 3.5–4 on loopback, idle cells as well as busy ones, with or without a service
 * probed (the cause is not found: the 128 MiB calibration pauses like the 8 MiB ones, and taking
 * the compression thread out of a pure post-copy moved it within the noise) — and every post-copy
 * prediction carried that: post-copy downtime was the largest error of the matrix (a median
 * 41–46 % off on loopback and lan). So each completed migration that switched to post-copy adds
 * what its switchover cost, and the cells after it are predicted from the median of the
 * calibration's figure and those: still a prediction made before its migration, from what was
 * measured on the same link and host before it (Akoush et al.'s fixed costs, kept up to date).
 */
import type { MigrationReport } from '@livemig/shared/report';
import { median } from './scores.ts';

/** The switchover cost to predict the next post-copy from: the median of the calibration's and those measured since. */
export function learnedSwitchoverMs(calibratedMs: number, measuredMs: readonly number[]): number {
  return median([calibratedMs, ...measuredMs])!;
}

/**
 * What a completed migration's post-copy switchover cost, as the model counts it (its downtime
 * less the 1.5 RTT the model adds to it: shared/src/predict/model.ts), with the RTT the model
 * was given; null for a migration that did not complete through a post-copy switchover.
 */
export function postcopySwitchoverOf(report: MigrationReport, rttMs: number): number | null {
  if (report.outcome !== 'completed' || !report.postcopy || report.times.downtimeMs === null) return null;
  return Math.max(0, report.times.downtimeMs - 1.5 * rttMs);
}
