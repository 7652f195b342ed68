/**
 * Stop-and-copy (pre-copy's end): pause the vCPU — the downtime starts — and let every section
 * send what it has left (RAM: the rest of the round, everything dirty, the final harvest; then
 * CPU and device state). StopCopyEnd carries our digest of every section; the destination
 * checks them against what it loaded before it says Ready, and we check its digests too.
 */
import { msg, MsgType } from '@livemig/shared/channel';
import type { MigrationContext } from '../context.ts';
import { completeAll, digestsOf } from '../sections/index.ts';
import { checkDigests } from './verify.ts';

export async function stopCopyPhase(ctx: MigrationContext): Promise<void> {
  const { stats, logger } = ctx;
  const sections = ctx.s;
  const main = ctx.channels.main;
  ctx.machine.transition('precopy', 'stopcopy');
  await ctx.pause();
  const started = performance.now();
  const bytesBefore = main.bytesSent;
  await completeAll(sections, 'precopy');
  ctx.verify.source = digestsOf(sections);
  main.send(msg.stopCopyEnd(ctx.verify.source));
  const ready = await main.expect(MsgType.Ready, ctx.signal);
  const ms = performance.now() - started;
  const bytes = main.bytesSent - bytesBefore;
  const pages = stats.current.sent;
  stats.rounds.push({
    index: stats.rounds.length,
    pages,
    bytes,
    ms,
    bandwidthBps: ms > 0 ? (bytes / ms) * 1000 : 0,
    dirtyAfter: 0,
  });
  stats.pendingPages = 0;
  checkDigests(
    ctx,
    ready.digests,
    sections.all.map((s) => s.name),
  );
  logger.info({ event: 'stopcopy.done', pages, ms }, 'destination verified the VM and is ready');
}
