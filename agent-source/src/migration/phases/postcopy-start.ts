/**
 * The post-copy switchover: pause the vCPU (the downtime starts), let the sections send what
 * must be there before the destination resumes — RAM computes which pages the destination
 * lacks and sends the few a device writes by itself; CPU and device state go whole — then
 * PostcopyStart with the map of absent pages and our digests of the state sections. The
 * destination checks those against what it loaded (a changed register stops it here, while we
 * still own the VM) and says Ready.
 */
import { msg, MsgType } from '@livemig/shared/channel';
import type { MigrationContext } from '../context.ts';
import { completeAll, digestsOf } from '../sections/index.ts';
import { checkDigests } from './verify.ts';
import { faultChannelReady } from '../fault-on-demand.ts';

export async function postcopyStartPhase(ctx: MigrationContext): Promise<void> {
  const { vm, logger } = ctx;
  const sections = ctx.s;
  const main = ctx.channels.main;
  ctx.machine.transition(['setup', 'precopy'], 'postcopy-start');
  ctx.switchover ??= { reason: 'postcopy', expectedDowntimeMs: 0 };
  const runningMs = performance.now() - ctx.stepsAtStart.at;
  const stepsBefore = vm.steps - ctx.stepsAtStart.steps;
  await faultChannelReady(ctx); // opened during round 0 (hybrid): there before the VM may leave
  await ctx.pause();
  await completeAll(sections, 'postcopy');
  const absent = sections.ram.absentMap();
  // The source's fault worker answers from the moment the destination resumes, not once this thread gets to it.
  const pusher = sections.ram.pusher;
  if (pusher) ctx.channels.faultWorker?.arm(pusher);
  ctx.verify.source = digestsOf(sections);
  // A disk in post-copy: which blocks the destination lacks, before it may resume.
  const diskAbsent = sections.disk?.absentMessage();
  if (diskAbsent) main.send(diskAbsent);
  main.send(msg.postcopyStart(absent.bytes(), ctx.verify.source));
  const stateSentMs = performance.now() - ctx.pausedSince;
  const ready = await main.expect(MsgType.Ready, ctx.signal);
  checkDigests(ctx, ready.digests, Object.keys(ctx.verify.source));
  logger.debug(
    { event: 'postcopy.timing', stateSentMs, readyMs: performance.now() - ctx.pausedSince },
    'post-copy switchover timing (ms after the pause)',
  );
  ctx.postcopy = {
    absentAtSwitchover: absent.count,
    pagesFetchedOnDemand: 0,
    pagesPushed: 0,
    faults: 0,
    faultLatencyMs: null,
    vcpuBlockedMs: 0,
    stepsPerSecBefore: runningMs > 0 ? (stepsBefore / runningMs) * 1000 : 0,
    stepsPerSecDuring: 0,
    postcopyMs: 0,
    recoveries: 0,
  };
  logger.info({ event: 'postcopy.switch', absent: absent.count }, 'switching to post-copy');
}
