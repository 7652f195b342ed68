/**
 * `query-migrate`'s live figures, read from the context the way the report reads them (one
 * MigrationStats, so the live view and the report can never disagree). What each figure counts
 * is MigrationInfo's documentation (shared/src/control/messages.ts); in short:
 *
 *   remaining      every section's pending bytes (sections/index.ts): the round in progress not
 *                  sent yet plus what the last harvest found dirty; in post-copy the absent
 *                  pages not sent yet
 *   cpu-throttle   the vCPU's throttle now, read from its control block (0 once lifted)
 *   mbps, ETA      from one measurement (bandwidth.ts liveSample): the round in progress once it
 *                  has moved enough to time, else the last round that did; in post-copy the push
 *                  since the switchover (or since the reconnect) — never a guess: unknown is null
 */
import type { MigrationInfo } from '@livemig/shared/control';
import { etaMs, liveSample, type SendSample } from './bandwidth.ts';
import type { MigrationContext } from './context.ts';
import { pendingBytes } from './sections/index.ts';

export function liveInfo(ctx: MigrationContext): MigrationInfo {
  const s = ctx.stats;
  const vm = ctx.vm;
  const status = ctx.machine.state;
  const remaining = ctx.sections ? pendingBytes(ctx.sections) : vm.spec.memoryBytes;
  const pusher = ctx.sections?.ram.pusher;
  const sample = pusher ? postcopySample(ctx) : liveSample(precopySample(ctx), s.rounds);
  return {
    direction: 'outgoing',
    migrationId: ctx.id,
    vm: ctx.hosted.name,
    mode: ctx.mode,
    status,
    startedAt: performance.timeOrigin + s.startedAt,
    transferred: ctx.channels.wireBytes,
    remaining,
    total: vm.spec.memoryBytes + (ctx.sections?.disk?.plannedBytes ?? 0),
    duplicate: s.zeroPages + s.skippedZeroPages,
    normal: s.rawPages,
    dirtyPagesRate: s.dirtyPagesRate,
    mbps: sample ? (sample.bytes * 8) / 1e3 / sample.ms : null,
    dirtySyncCount: s.harvests,
    expectedDowntime: Number.isFinite(s.expectedDowntimeMs) ? s.expectedDowntimeMs : null,
    totalTime: s.elapsedMs,
    setupTime: s.setupMs,
    downtime: s.downtimeMs,
    timeRemaining: timeRemaining(status, remaining, sample, vm.memory.pageSize),
    cpuThrottlePercentage: ctx.cpuThrottlePercent,
    passProgress: s.current.planned ? s.current.sent / s.current.planned : 0,
    pass: s.current.index,
    postcopy:
      pusher && ctx.postcopy
        ? {
            pages: vm.memory.pageCount,
            present: vm.memory.pageCount - pusher.remaining,
            absentAtSwitchover: ctx.postcopy.absentAtSwitchover,
            fetchedOnDemand: pusher.fetchedOnDemand,
            pushed: pusher.pushed,
          }
        : null,
  };
}

/** The ETA for this status: 0 once completed; unknown when it will not finish by sending (paused link, failed, cancelled). */
export function timeRemaining(
  status: string,
  remainingBytes: number,
  sample: SendSample | undefined,
  pageSize: number,
): number | null {
  if (status === 'completed') return 0;
  if (status === 'failed' || status === 'cancelled' || status === 'postcopy-paused') return null;
  return etaMs(remainingBytes, sample, pageSize) ?? null;
}

/** The round in progress so far (stop-and-copy's set included); undefined before the first. */
function precopySample(ctx: MigrationContext): SendSample | undefined {
  const { current } = ctx.stats;
  const bytesSent = ctx.channels.mainBytesSent;
  // Closed (the migration is over, or nearly): the last round stands.
  if (current.startedAt === 0 || bytesSent === undefined) return undefined;
  return { pages: current.sent, bytes: bytesSent - current.bytesAtStart, ms: performance.now() - current.startedAt };
}

/** The post-copy push so far in this attempt, once it measured the link (the rounds before it do not count). */
function postcopySample(ctx: MigrationContext): SendSample | undefined {
  const push = ctx.stats.postcopyPush;
  const pusher = ctx.sections?.ram.pusher;
  if (!push || !pusher) return undefined;
  const sample = {
    pages: pusher.pushed + pusher.fetchedOnDemand - push.pagesAtStart,
    bytes: ctx.channels.wireBytes - push.bytesAtStart,
    ms: performance.now() - push.startedAt,
  };
  return liveSample(sample, []);
}
