/**
 * Failure, with the same checked transition as every other phase change. Until Handoff was
 * sent the source owns the VM: resume the vCPU if we paused it (the destination cannot run it
 * without a Handoff, so the guest never waits on what follows), tell the destination why so it
 * discards its copy — with a Cancel and the record of this outcome to countersign while the
 * channel still works (record.ts), else with the error as the connections close — and the VM
 * runs on here as before. Past
 * Handoff the VM is never resumed here: pre-copy — the destination may be running it; post-copy
 * — it is, and part of its memory is here, so losing the link for good loses it. The log and the
 * report say which.
 */
import type { MigrationError } from '@livemig/shared';
import type { MigrationContext } from '../context.ts';
import { SOURCE_OWNS_VM, SOURCE_PAST_HANDOFF } from '../status.ts';
import { cancelWithRecord } from './record.ts';

export async function rollbackPhase(ctx: MigrationContext, error: MigrationError): Promise<void> {
  const { logger } = ctx;
  const owned = SOURCE_OWNS_VM.includes(ctx.machine.state);
  const outcome = error.code === 'ERR_CANCELLED' && owned ? 'cancelled' : 'failed';
  ctx.disarmWatchdog();
  // Before the VM resumes (or, not paused, simply runs on) here: never throttled past the migration.
  ctx.liftThrottle(`the migration ${outcome}`);
  if (owned) {
    ctx.vmRunsOnIfFailed = 'source';
    await reattachDisk(ctx);
    if (ctx.pausedAt !== undefined) {
      ctx.vm.resume();
      ctx.resumedHereAt = performance.now();
    }
    ctx.setVmState('running');
    ctx.record = await cancelWithRecord(ctx, outcome, error);
    await ctx.channels.close(error);
    logger.warn({ event: 'migration.rollback', err: error }, `migration ${outcome}; the VM keeps running here`);
  } else {
    await ctx.channels.close(error);
    pastHandoff(ctx, error);
  }
  ctx.machine.transition(owned ? SOURCE_OWNS_VM : SOURCE_PAST_HANDOFF, outcome);
}

/**
 * The VM goes on here with its disk: a shared image handed over at the stop point is opened
 * again. The destination may hold its lock for a moment longer (it discards its copy as it
 * hears of the failure): the VM resumes anyway, its disk requests held by the device, and the
 * image is retried in the background until it opens (or for DISK_REATTACH_MS, then the VM's
 * disk stays detached and the log says why).
 */
async function reattachDisk(ctx: MigrationContext): Promise<void> {
  const disk = ctx.sections?.disk;
  if (!disk) return;
  try {
    await disk.rollback();
  } catch (first) {
    ctx.logger.warn(
      { event: 'disk.reattach.retry', err: first },
      'the disk image is not back yet; retrying in the background',
    );
    const until = performance.now() + DISK_REATTACH_MS;
    void (async () => {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        try {
          await disk.rollback();
          ctx.logger.info({ event: 'disk.reattached' }, 'the disk image is back: the VM runs on it here');
          return;
        } catch (error) {
          if (performance.now() > until) {
            ctx.logger.error({ event: 'disk.reattach.failed', err: error }, 'the disk image could not be opened again');
            return;
          }
        }
      }
    })();
  }
}

/** How long a rollback keeps trying to open a shared image again. */
const DISK_REATTACH_MS = 60_000;

/** Past Handoff the VM is never resumed here: say where it is. */
function pastHandoff(ctx: MigrationContext, error: MigrationError): void {
  const { logger } = ctx;
  if (ctx.vmRunsOnIfFailed === 'paused-on-source') {
    ctx.setVmState('migrated');
    logger.error(
      { event: 'migration.handoff-unconfirmed', err: error },
      'handoff was sent but the destination never confirmed: the VM stays paused here (state "migrated") and ' +
        'may be running on the destination; check it before `cont --force` here',
    );
  } else {
    ctx.setVmState('migrated');
    logger.error(
      { event: 'migration.postcopy-lost', err: error },
      'post-copy failed after the point of no return: the VM ran on the destination with pages still here; ' +
        'it is lost unless the destination still runs it',
    );
  }
}
