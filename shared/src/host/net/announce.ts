/**
 * When to re-announce an address that just moved, as a pure schedule (no timers, no I/O).
 *
 * After a move, two caches still point at the old host: the bridges/switches that learned which
 * port the VM's MAC sits behind, and (if the MAC changed) the clients' ARP caches. A gratuitous
 * ARP sent from the new host fixes both, but one frame can be lost, so it is repeated with a
 * growing back-off — QEMU's `announce-*` parameters, with QEMU's defaults and limits:
 *
 *   delay before round i (from the round before) = min(initialMs + i × stepMs, maxMs)
 *
 *   defaults  initial 50 ms, step +100 ms, max 550 ms, 5 rounds
 *   delays    [50, 150, 250, 350, 450]        offsets from take()  [50, 200, 450, 800, 1250]
 *
 * One difference from QEMU: QEMU sends its first round at once and then waits the delays between
 * the later ones (rounds at 0, 50, 200, 450, 800 ms). Here the kernel sends the immediate one
 * itself — `arp_notify=1` makes it send a gratuitous ARP the moment the link comes up — so every
 * one of the `rounds` scheduled here is an extra, and the first waits `initialMs`.
 */
import { MigrationError } from '../../errors.ts';

/** The re-announce back-off (QEMU `announce-initial`, `-step`, `-max`, `-rounds`). */
export interface AnnounceSchedule {
  /** Delay before the first re-announcement, after the link came up (0–100000 ms). @default 50 */
  initialMs: number;
  /** How much longer each delay is than the one before (1–10000 ms). @default 100 */
  stepMs: number;
  /** Cap on any one delay (0–100000 ms, not below `initialMs`). @default 550 */
  maxMs: number;
  /** How many re-announcements (0–1000); 0 leaves only the kernel's own. @default 5 */
  rounds: number;
}

/** QEMU's defaults (`migration/options.c`: DEFAULT_MIGRATE_ANNOUNCE_*). */
export const DEFAULT_ANNOUNCE: Readonly<AnnounceSchedule> = Object.freeze({
  initialMs: 50,
  stepMs: 100,
  maxMs: 550,
  rounds: 5,
});

/** QEMU's limits (`migrate_params_check`), [min, max] inclusive. */
const LIMITS: Record<keyof AnnounceSchedule, readonly [number, number]> = {
  initialMs: [0, 100_000],
  stepMs: [1, 10_000],
  maxMs: [0, 100_000],
  rounds: [0, 1000],
};

/**
 * Fill in the defaults and check the result. Throws ERR_INVALID_ARGUMENT for a value that is not
 * an integer within QEMU's limits, or for `maxMs` below `initialMs` (a cap under the first delay
 * is a contradiction, not a schedule).
 */
export function resolveAnnounce(partial: Partial<AnnounceSchedule> = {}): AnnounceSchedule {
  const schedule: AnnounceSchedule = { ...DEFAULT_ANNOUNCE };
  for (const key of Object.keys(LIMITS) as (keyof AnnounceSchedule)[]) {
    const value = partial[key] ?? DEFAULT_ANNOUNCE[key];
    const [min, max] = LIMITS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `announce ${key} must be an integer from ${min} to ${max}, got ${String(value)}`,
      );
    }
    schedule[key] = value;
  }
  if (schedule.maxMs < schedule.initialMs) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `announce maxMs (${schedule.maxMs}) is below initialMs (${schedule.initialMs})`,
    );
  }
  return schedule;
}

/** Delay before each re-announcement, from the one before (the first from take()), in ms. */
export function announceDelays(partial: Partial<AnnounceSchedule> = {}): number[] {
  const { initialMs, stepMs, maxMs, rounds } = resolveAnnounce(partial);
  return Array.from({ length: rounds }, (_, i) => Math.min(initialMs + i * stepMs, maxMs));
}

/** When each re-announcement goes out, in ms after take(): the running sum of the delays. */
export function announceOffsets(partial: Partial<AnnounceSchedule> = {}): number[] {
  let at = 0;
  return announceDelays(partial).map((delay) => (at += delay));
}
