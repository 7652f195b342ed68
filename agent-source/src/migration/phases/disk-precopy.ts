/**
 * Memory in post-copy, disk copied or mirrored: the disk must be at the destination before the
 * VM resumes there, and waiting for it inside the switchover would make its whole copy
 * downtime. So, as QEMU does with a block mirror ahead of a post-copy RAM migration, the disk
 * goes first, in pre-copy rounds of its own while the VM runs here (mirror: round 0, then the
 * guest's writes are synchronous and one catch-up round remains), until what is left of it fits
 * the downtime limit at the measured bandwidth — then post-copy of memory starts, and the rest
 * of the disk is sent at the switchover. The switchover rule is convergence.ts's, over the disk's
 * pending bytes alone (RAM sends nothing before post-copy).
 */
import { msg, MsgType } from '@livemig/shared/channel';
import type { MigrationContext } from '../context.ts';
import type { DiskSection } from '../sections/disk/disk-section.ts';
import { ITERATE_BUDGET_BYTES, ruleAfterRound } from './precopy.ts';

export async function diskPrecopyPhase(ctx: MigrationContext, disk: DiskSection): Promise<void> {
  const { stats, logger } = ctx;
  const main = ctx.channels.main;
  ctx.machine.transition('setup', 'precopy');
  const pendingAfter: number[] = [];
  for (let round = 0; ; round++) {
    const started = performance.now();
    const bytesBefore = main.bytesSent;
    disk.startRound(round);
    while (!(await disk.iterate(ITERATE_BUDGET_BYTES))) {
      if (ctx.requests.shutdown) break;
    }
    if (!main.send(msg.roundEnd({ round, pages: 0, bytes: main.bytesSent - bytesBefore }))) {
      await main.drained(ctx.signal);
    }
    disk.endRound();
    const ms = performance.now() - started;
    const bytes = main.bytesSent - bytesBefore;
    stats.rounds.push({
      index: round,
      pages: 0,
      bytes,
      ms,
      bandwidthBps: ms > 0 ? (bytes / ms) * 1000 : 0,
      dirtyAfter: 0,
    });
    pendingAfter.push(disk.pending());
    const decision = ruleAfterRound(ctx, round, pendingAfter);
    logger.info(
      { event: 'disk.round.end', round, bytes, ms, pendingBytes: disk.pending(), ...decision },
      `disk round ${round}: ${disk.dirtyBlocks} blocks dirty after`,
    );
    if (decision.switchover !== undefined || ctx.requests.shutdown) {
      // Everything of this round is at the destination before the VM stops here.
      for (;;) {
        const ack = await main.expect(MsgType.RoundAck, ctx.signal);
        if (ack.round >= round) break;
      }
      return;
    }
  }
}
