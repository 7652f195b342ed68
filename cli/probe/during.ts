/**
 * A probe that runs alongside a migration (`demo --probe`, `migrate --probe`): it starts before
 * the migration, and the caller starts the migration only once the VM answers, so the gap it
 * measures is the migration's and not a cold start. It goes on for `tailMs` after the migration
 * ends, so the first replies from the destination are inside the window; then every
 * acknowledged write is read back. Its result becomes the report's `network` section.
 */
import { MigrationError, type HostPort } from '@livemig/shared';
import type { MigrationReport } from '@livemig/shared/report';
import { runProbe, type ProbeResult } from './probe.ts';
import { longestGapOverlapping } from './summarize.ts';

export interface ProbeDuringOptions {
  target: HostPort;
  /** @default 1 */
  intervalMs?: number;
  /** How long to keep probing after the migration ended. @default 500 */
  tailMs?: number;
  /** How long to wait for the VM's first reply before giving up. @default 5000 */
  firstReplyTimeoutMs?: number;
}

export interface RunningProbe {
  /** Resolves at the first reply; rejects (ERR_CONNECTION) if the VM does not answer in time. */
  answered: Promise<void>;
  /** Stop after the tail and return what the probe saw. */
  finish(): Promise<ProbeResult>;
  /** Stop now, without the tail or the read-back (the migration failed to start). */
  abandon(): Promise<void>;
}

/** Longest a probe may run: it is stopped by finish() long before. */
const MAX_PROBE_MS = 24 * 3600 * 1000;

export function startProbe(options: ProbeDuringOptions): RunningProbe {
  let answered!: () => void;
  let stop!: () => void;
  const firstReply = new Promise<void>((resolve) => (answered = resolve));
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const abort = new AbortController();
  const result = runProbe({
    signal: abort.signal,
    target: options.target,
    intervalMs: options.intervalMs ?? 1,
    durationMs: MAX_PROBE_MS,
    writes: true,
    until: stopped,
    onReply: () => answered(),
  });
  result.catch(() => {});
  const timeoutMs = options.firstReplyTimeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(
        new MigrationError(
          'ERR_CONNECTION',
          `the VM's service at ${options.target.host}:${options.target.port} did not answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
  });
  timeout.catch(() => {});
  return {
    answered: Promise.race([firstReply, timeout]).finally(() => clearTimeout(timer)),
    async finish() {
      clearTimeout(timer);
      await new Promise((resolve) => setTimeout(resolve, options.tailMs ?? 500));
      stop();
      return result;
    },
    async abandon() {
      clearTimeout(timer);
      abort.abort();
      await result.catch(() => undefined);
    },
  };
}

/**
 * The report's `network` section from a probe run. The address mode comes from the report (the
 * source's NIC); with the report's switchover time (same clock: one machine, or synchronised
 * hosts), the gap that overlaps the switchover is told apart from the longest gap overall.
 */
export function networkSection(
  probe: ProbeResult,
  report: Pick<MigrationReport, 'times' | 'nic'>,
): NonNullable<MigrationReport['network']> {
  const { pausedAt, downtimeMs } = report.times;
  const addressMode = report.nic?.addressMode;
  return {
    downtimeMs: probe.networkDowntimeMs,
    ...(pausedAt === undefined || downtimeMs === null
      ? {}
      : {
          // The window on the probe's own clock, so gaps are the same numbers as downtimeMs's.
          switchoverGapMs: longestGapOverlapping(
            probe.arrivalsMs,
            pausedAt - probe.timeOriginMs,
            pausedAt - probe.timeOriginMs + downtimeMs,
          ),
        }),
    lostReplies: probe.lostReplies,
    lostWrites: probe.writes?.lostWrites ?? 0,
    address: probe.target,
    ...(addressMode ? { addressMode } : {}),
    requests: probe.sent,
    intervalMs: probe.intervalMs,
    latencyMs: probe.latencyMs,
  };
}
