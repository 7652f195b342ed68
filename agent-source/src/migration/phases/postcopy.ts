/**
 * Post-copy, after the handoff: the VM runs on the destination and this side holds the pages it
 * lacks. RAM pushes every absent page on the main channel while PageRequests are answered first
 * on the fault channel; after the push, StopCopyEnd carries our memory digest and the
 * destination answers Complete with its own (and what only it measured: faults, latency, vCPU
 * blocked time). A broken link parks the migration in postcopy-paused until recovery.ts
 * reconnects; running out of recovery time loses the VM, and the report says so.
 */
import { checkHistogram } from '@livemig/shared/report';
import { MigrationError, toMigrationError } from '@livemig/shared';
import { msg, MsgType } from '@livemig/shared/channel';
import type { PostcopyReport } from '@livemig/shared/report';
import type { MigrationContext } from '../context.ts';
import { takeDestFigures } from '../dest-figures.ts';
import { recoverPhase } from './recovery.ts';
import { checkDigests } from './verify.ts';

export async function postcopyPhase(ctx: MigrationContext): Promise<void> {
  const ram = ctx.s.ram;
  const pusher = ram.pusher;
  const report = ctx.postcopy;
  if (!pusher || !report) throw new MigrationError('ERR_INTERNAL', 'post-copy without a switchover');
  ctx.machine.transition('handoff', 'postcopy');
  const started = performance.now();
  let destStats: Record<string, unknown>;
  for (;;) {
    // The push rate (query-migrate's ETA) is measured per attempt: a pause on a broken link says nothing about the link.
    const pagesAtStart = pusher.pushed + pusher.fetchedOnDemand;
    ctx.stats.postcopyPush = { startedAt: performance.now(), pagesAtStart, bytesAtStart: ctx.channels.wireBytes };
    try {
      destStats = await pushUntilComplete(ctx);
      break;
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      await recoverPhase(ctx, toMigrationError(error));
    }
  }
  ctx.stats.pendingPages = 0;
  pusher.settle(); // what the fault worker sent joins this side's figures
  report.pagesFetchedOnDemand = pusher.fetchedOnDemand;
  report.pagesPushed = pusher.pushed;
  report.faultThread = ctx.channels.faultThread;
  report.sourceFaultWorker = ctx.channels.faultWorker?.alive ?? false;
  report.pagesAnsweredAgain = pusher.answeredAgain;
  report.postcopyMs = performance.now() - started;
  report.faults = numberOf(destStats.faults);
  report.vcpuBlockedMs = numberOf(destStats.vcpuBlockedMs);
  report.stepsPerSecDuring = numberOf(destStats.stepsPerSecDuring);
  report.faultLatencyMs = (destStats.faultLatencyMs as PostcopyReport['faultLatencyMs'] | undefined) ?? null;
  // From the peer: kept only when well formed (bounded, buckets of 2^i µs).
  const histogram = checkHistogram(destStats.faultLatencyHistogram);
  if (histogram) report.faultLatencyHistogram = histogram;
  takeDestFigures(ctx, destStats);
}

/** One attempt: push everything on the main channel while answering faults; StopCopyEnd → Complete. */
async function pushUntilComplete(ctx: MigrationContext): Promise<Record<string, unknown>> {
  const ram = ctx.s.ram;
  const main = ctx.channels.main;
  const disk = ctx.s.disk?.storage === 'postcopy' ? ctx.s.disk : undefined;
  // The source's fault worker answers on its own thread when it holds the fault channel; else this thread does.
  const worker = ctx.channels.faultWorker;
  const faults =
    worker && ram.pusher ? worker.serve(ram.pusher, ctx.signal) : ram.serveFaults(ctx.channels.fault, ctx.signal);
  const pushing = (async () => {
    // Memory and disk push side by side on the main channel; each answers its own requests first.
    const [ramDigest, diskDigest] = await Promise.all([ram.push(main), disk?.push(main)]);
    const digests: Record<string, string> = { ram: ramDigest };
    if (diskDigest !== undefined) digests.disk = diskDigest;
    Object.assign(ctx.verify.source, digests);
    main.send(msg.stopCopyEnd(digests));
    return main.expect(MsgType.Complete, ctx.signal);
  })();
  faults.catch(() => {});
  pushing.catch(() => {});
  // The fault channel only ever ends in an error; whichever fails first fails this attempt.
  const complete = await Promise.race([pushing, faults]);
  checkDigests(ctx, complete.digests, disk ? ['ram', 'disk'] : ['ram']);
  return complete.stats;
}

function numberOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
