/**
 * Re-announcing an address that just moved: this module owns when (a pure schedule, no timers,
 * no I/O) and the announcer that follows it (timers and `arping` processes).
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
 *
 * ArpAnnouncer sends each round as iputils `arping -U` (a gratuitous ARP request: sender IP =
 * target IP = the VM's, from the link's MAC), one process per round, not awaited. Restarting or
 * stopping it cancels the rounds still to come and kills the ones in flight; without arping it
 * warns once and relies on the kernel's announcement alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
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

/** What an ArpAnnouncer announces, and how. */
export interface ArpAnnouncerOptions {
  /** The link the VM's address is on (arping -I). */
  link: string;
  /** The VM's IP. */
  ip: string;
  /** The back-off. @default DEFAULT_ANNOUNCE */
  announce?: Partial<AnnounceSchedule>;
  /** Logs each round at debug, failures and a missing arping at warn. @default no logging */
  logger?: Logger;
}

/** Sends the re-announcements of one address on the announce schedule. */
export class ArpAnnouncer {
  readonly #link: string;
  readonly #ip: string;
  readonly #delays: readonly number[];
  readonly #logger: Logger | undefined;
  /** Bumped to cancel the rounds in flight. */
  #generation = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #arpings = new Set<ChildProcess>();
  #arpingMissing = false;

  /** Throws ERR_INVALID_ARGUMENT for a schedule outside QEMU's limits (resolveAnnounce). */
  constructor(options: ArpAnnouncerOptions) {
    this.#link = options.link;
    this.#ip = options.ip;
    this.#delays = announceDelays(options.announce);
    this.#logger = options.logger;
  }

  /** Starts the rounds from now (the link just came up); rounds of an earlier start() are cancelled. */
  start(): void {
    this.stop();
    const generation = this.#generation;
    const schedule = (round: number): void => {
      const delay = this.#delays[round];
      if (delay === undefined) return;
      // unref: a pending announcement never keeps the process alive.
      this.#timer = setTimeout(() => {
        if (generation !== this.#generation) return;
        this.#arping(round + 1);
        schedule(round + 1);
      }, delay).unref();
    };
    schedule(0);
  }

  /** Cancels the rounds to come and kills the ones in flight. Safe at any time. */
  stop(): void {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const child of this.#arpings) child.kill('SIGKILL');
    this.#arpings.clear();
  }

  /**
   * One gratuitous ARP request. Each round is its own process and is not awaited: `arping -c 1`
   * lingers for a second after sending, longer than the first gaps of the schedule.
   */
  #arping(round: number): void {
    if (this.#arpingMissing) return;
    const args = ['-q', '-U', '-c', '1', '-I', this.#link, this.#ip];
    const child = spawn('arping', args, { stdio: 'ignore' });
    child.unref();
    this.#arpings.add(child);
    child.once('error', (error: NodeJS.ErrnoException) => {
      this.#arpings.delete(child);
      if (error.code === 'ENOENT') {
        this.#arpingMissing = true;
        this.#logger?.warn(
          { event: 'address.arping-missing' },
          "arping (iputils) is not installed: relying on the kernel's gratuitous ARP at link up (arp_notify)",
        );
      } else {
        this.#logger?.warn({ event: 'address.announce-failed', round, err: error }, 'arping failed to start');
      }
    });
    child.once('exit', (code, signal) => {
      this.#arpings.delete(child);
      if (code === 0 || signal !== null) {
        this.#logger?.debug({ event: 'address.announce', round }, 'gratuitous ARP sent');
      } else {
        this.#logger?.warn({ event: 'address.announce-failed', round, code }, `arping ${args.join(' ')} failed`);
      }
    });
  }
}
