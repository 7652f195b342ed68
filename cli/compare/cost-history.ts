/**
 * The fixed costs of a switchover as this run measures them, per calibration (one VM size on one
 * link), kept to predict the next cells (pure). Akoush et al. measure the fixed costs on the
 * host once; here the idle calibration migrations measure them first, and every completed plain
 * cell after them adds what its own switchover cost. The next cells are predicted from the
 * median of the calibration's figure and those — still a prediction made before its migration,
 * from what was measured on the same link and host before it. Why each one:
 *
 * - the post-copy switchover: the cells' cost 5–11 ms against the idle calibrations' 3.5–4 on
 *   loopback, idle cells as well as busy ones (the cause is not found: the 128 MiB calibration
 *   pauses like the 8 MiB ones, and taking the compression thread out of a pure post-copy moved
 *   it within the noise); post-copy downtime was the matrix's largest error (41–46 % off);
 * - the stop-and-copy's rate: the calibration's hot-set migration is one sample of it, and on
 *   loopback (where the engine, not the link, sets the pace) it measured 243 MB/s where the cells'
 *   final sets then moved at 300–850 MB/s (median ~470): every loopback pre-copy and hybrid
 *   downtime was predicted 40–150 % long;
 * - the pre-copy switchover (the downtime less 1.5 RTT and a small final set at that rate);
 * - both switchovers of a VM with a NIC apart: its address moves with it (a macvlan on the lab
 *   links: ~10 ms more, 14–20 ms post-copy pauses against 5–10 for the same link's VMs without
 *   one). Until such a VM was measured its prior is the same link's figure without one.
 */
import type { MigrationReport } from '@livemig/shared/report';
import { median } from './scores.ts';

/** A final set smaller than this, or sent faster (in ms, and in RTTs), says little of the stop-and-copy's rate. */
const RATE_SAMPLE_MIN = { bytes: 1 << 20, ms: 5, rtts: 5 } as const;

/** Switchover samples, by whether the VM had a NIC. */
export interface SwitchoverSamples {
  plain: number[];
  nic: number[];
}

/** One calibration's samples, from the cells after it, in order. */
export interface CostHistory {
  precopySwitchoverMs: SwitchoverSamples;
  postcopySwitchoverMs: SwitchoverSamples;
  /** The stop-and-copy's rate, bytes/s (the final round's bytes over its time). */
  stopCopyBps: number[];
}

/** The costs the model takes (shared/src/predict/model.ts): overheads' switchoverMs, link's stopCopyBandwidthBps. */
export interface SwitchoverCosts {
  precopySwitchoverMs: number;
  postcopySwitchoverMs: number;
  /** undefined: not measured (the model falls back to the resend rate). */
  stopCopyBps: number | undefined;
}

export function emptyCostHistory(): CostHistory {
  return { precopySwitchoverMs: { plain: [], nic: [] }, postcopySwitchoverMs: { plain: [], nic: [] }, stopCopyBps: [] };
}

/** The figure to predict from: the median of the prior (the calibration's) and those measured since. */
export function learned(prior: number, measured: readonly number[]): number {
  return median([prior, ...measured])!;
}

/** The median of the prior and the measured, or of the measured alone without a prior; undefined for neither. */
function learnedRate(prior: number | undefined, measured: readonly number[]): number | undefined {
  return median(prior === undefined ? measured : [prior, ...measured]) ?? undefined;
}

function learnedSwitchover(prior: number, samples: SwitchoverSamples, nic: boolean): number {
  const plain = learned(prior, samples.plain);
  return nic ? learned(plain, samples.nic) : plain;
}

/** The costs to predict the next cell with, from the calibration's (`prior`) and what the cells measured since. */
export function learnedCosts(prior: SwitchoverCosts, history: CostHistory, nic: boolean): SwitchoverCosts {
  return {
    precopySwitchoverMs: learnedSwitchover(prior.precopySwitchoverMs, history.precopySwitchoverMs, nic),
    postcopySwitchoverMs: learnedSwitchover(prior.postcopySwitchoverMs, history.postcopySwitchoverMs, nic),
    stopCopyBps: learnedRate(prior.stopCopyBps, history.stopCopyBps),
  };
}

/** What one migration measured of the costs; a field is absent when it said nothing of that cost. */
export interface CostSamples {
  precopySwitchoverMs?: number;
  postcopySwitchoverMs?: number;
  stopCopyBps?: number;
}

/**
 * What a completed migration says of the costs, as the model counts them (shared/src/predict
 * model.ts): a post-copy switchover is its downtime less 1.5 RTT. A stop-and-copy's final round
 * (the report's last) gives the rate when it is large enough to time; when it is not, the
 * switchover: the downtime less 1.5 RTT and that round's bytes at `stopCopyBps` (the rate the
 * cell was predicted with; at the round's own time when none was measured). Never both: behind
 * a final set of seconds (16 MB at 12 MB/s) the switchover's few ms are lost in the rate's
 * noise — 5 % of it is 70 ms. `rttMs`: the RTT the model was given.
 */
export function costSamplesOf(report: MigrationReport, rttMs: number, stopCopyBps: number | undefined): CostSamples {
  const downtime = report.times.downtimeMs;
  if (report.outcome !== 'completed' || downtime === null) return {};
  const pause = Math.max(0, downtime - 1.5 * rttMs);
  if (report.postcopy) return { postcopySwitchoverMs: pause };
  const last = report.rounds.at(-1);
  if (!last) return {};
  if (last.bytes >= RATE_SAMPLE_MIN.bytes) {
    // A round of a few RTTs is mostly waiting (a 1 MB kv set on the wan: 140 ms, 43 ms RTT —
    // it said 8 MB/s of a 12 MB/s link, and the hot sets' downtimes were predicted 40 % long).
    const timed = last.ms >= Math.max(RATE_SAMPLE_MIN.ms, RATE_SAMPLE_MIN.rtts * rttMs);
    return timed ? { stopCopyBps: (last.bytes / last.ms) * 1000 } : {};
  }
  const finalMs = stopCopyBps ? (last.bytes / stopCopyBps) * 1000 : last.ms;
  return { precopySwitchoverMs: Math.max(0, pause - finalMs) };
}

/** Add a migration's samples to the history (the VM had a NIC: its switchovers go apart). */
export function recordCosts(history: CostHistory, samples: CostSamples, nic: boolean): void {
  const key = nic ? 'nic' : 'plain';
  if (samples.precopySwitchoverMs !== undefined) history.precopySwitchoverMs[key].push(samples.precopySwitchoverMs);
  if (samples.postcopySwitchoverMs !== undefined) history.postcopySwitchoverMs[key].push(samples.postcopySwitchoverMs);
  if (samples.stopCopyBps !== undefined) history.stopCopyBps.push(samples.stopCopyBps);
}
