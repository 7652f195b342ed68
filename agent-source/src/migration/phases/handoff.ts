/**
 * Handoff, the point of no return: from the moment Handoff is sent the destination may be
 * running the VM, so this side never resumes it by itself again. The VM's address is let go
 * first (the socket closes synchronously), so the destination can take it the moment it
 * resumes. Resumed closes the downtime (downtime.ts: one clock, one exchange).
 */
import { msg, MsgType } from '@livemig/shared/channel';
import type { MigrationContext } from '../context.ts';
import { takeDestFigures } from '../dest-figures.ts';
import { downtimeFrom } from '../downtime.ts';

export async function handoffPhase(ctx: MigrationContext, from: 'stopcopy' | 'postcopy-start'): Promise<void> {
  const main = ctx.channels.main;
  // Past this line the VM may run on the destination: the watchdog must never resume it here.
  ctx.disarmWatchdog();
  ctx.machine.transition(from, 'handoff');
  ctx.vmRunsOnIfFailed = ctx.mode === 'precopy' || from === 'stopcopy' ? 'paused-on-source' : 'lost';
  void ctx.hosted.net?.give();
  const handoffSentAt = performance.now();
  main.send(msg.handoff());
  ctx.sections?.disk?.handedOver();
  ctx.logger.warn({ event: 'handoff.sent' }, 'handoff sent: the destination owns the VM now');
  const resumed = await main.expect(MsgType.Resumed);
  const figures = downtimeFrom({
    pausedAt: ctx.pausedSince,
    handoffSentAt,
    resumedSeenAt: performance.now(),
    destHoldMs: resumed.handoffToResumeMs,
  });
  ctx.rttMs = figures.rttMs;
  ctx.stats.downtimeMs = figures.downtimeMs;
  if (resumed.stats) takeDestFigures(ctx, resumed.stats);
  ctx.logger.info(
    { event: 'handoff.done', downtimeMs: figures.downtimeMs, destHoldMs: resumed.handoffToResumeMs },
    'the VM runs on the destination',
  );
}
