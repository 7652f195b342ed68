/**
 * One outgoing migration: the driver that runs the phases in the order the mode and the
 * switchover choose, and the operator's handle on it (cancel, switch to post-copy, switch over
 * now, resume). What happens in each phase is in phases/; what is sent, in sections/.
 *
 *   setup → [precopy rounds] → stopcopy → handoff → completed                 (pre-copy, or a
 *                                                                              hybrid that converged)
 *   setup → [precopy rounds] → postcopy-start → handoff → postcopy ⇄ recovery → completed
 *                                                                             (post-copy, hybrid)
 *   any failure → rollback.ts: resumed here until Handoff was sent; never resumed here after.
 *   the end, whatever it was → record.ts: the signed migration record (countersigned by the
 *   destination when the migration completed), kept before the report goes out.
 *
 * Ownership (ARCHITECTURE.md §4, a contract): until Handoff is sent the source owns the VM and
 * any failure — connection lost, peer error, cancel, digest mismatch — resumes it here and the
 * destination discards its copy. After Handoff the VM is never resumed here by itself.
 */
import { MigrationError, toMigrationError } from '@livemig/shared';
import type { MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { autoDecideAtSetup } from './auto.ts';
import { buildReport } from './build-report.ts';
import { MigrationContext, type OutgoingComponents, type OutgoingOptions } from './context.ts';
import { liveInfo } from './live-info.ts';
import type { ResolvedMigrateParams } from './params.ts';
import { handoffPhase } from './phases/handoff.ts';
import { diskPrecopyPhase } from './phases/disk-precopy.ts';
import { postcopyStartPhase } from './phases/postcopy-start.ts';
import { postcopyPhase } from './phases/postcopy.ts';
import { precopyPhase } from './phases/precopy.ts';
import { recordPhase, sourceOnlyRecord } from './phases/record.ts';
import { rollbackPhase } from './phases/rollback.ts';
import { setupPhase } from './phases/setup.ts';
import { stopCopyPhase } from './phases/stop-copy.ts';
import { startDirtyRate } from './start-dirty-rate.ts';
import { stopMultifd } from './multifd.ts';
import { SOURCE_OWNS_VM, type SourceStatus } from './status.ts';

export type { OutgoingComponents, OutgoingOptions } from './context.ts';

export class OutgoingMigration {
  readonly id: string;
  readonly #ctx: MigrationContext;
  #report: MigrationReport | undefined;

  constructor(components: OutgoingComponents, options: OutgoingOptions) {
    const ctx = new MigrationContext(components, options);
    this.#ctx = ctx;
    this.id = ctx.id;
    ctx.machine.onTransition((from, to) => {
      ctx.logger.info({ event: 'status.change', from, to }, `migration ${from} → ${to}`);
      ctx.emit('MIGRATION', { migrationId: ctx.id, status: to, vm: ctx.hosted.name });
    });
  }

  get status(): SourceStatus {
    return this.#ctx.machine.state;
  }

  get mode(): ResolvedMigrateParams['mode'] {
    return this.#ctx.mode;
  }

  get report(): MigrationReport | undefined {
    return this.#report;
  }

  /** True until the outcome is known. */
  get active(): boolean {
    return !this.#ctx.machine.isFinal;
  }

  /**
   * Cancel while the source still owns the VM (QMP `migrate_cancel`). Past the point of no
   * return it throws ERR_VM_STATE saying why; once over it returns false.
   */
  cancel(): boolean {
    const ctx = this.#ctx;
    if (!this.active || ctx.signal.aborted) return false;
    if (!SOURCE_OWNS_VM.includes(this.status)) {
      throw new MigrationError(
        'ERR_VM_STATE',
        `cannot cancel: the migration is past the point of no return (${this.status}); ` +
          (ctx.vmRunsOnIfFailed === 'paused-on-source'
            ? 'the destination owns the VM'
            : 'the VM runs on the destination and needs the pages still held here'),
      );
    }
    ctx.abort.abort(new MigrationError('ERR_CANCELLED', 'migration cancelled by the operator'));
    return true;
  }

  /** The agent is stopping: switch over at once, mid-round (finish rather than lose the VM). */
  switchoverNow(): void {
    this.#ctx.requests.shutdown = true;
  }

  /** Hybrid: switch to post-copy now, mid-round if need be (QMP migrate-start-postcopy). */
  startPostcopy(): void {
    if (this.mode !== 'hybrid') {
      throw new MigrationError('ERR_VM_STATE', `migrate-start-postcopy needs --mode hybrid (this one is ${this.mode})`);
    }
    if (this.status !== 'precopy' && this.status !== 'setup' && this.status !== 'none') {
      throw new MigrationError('ERR_VM_STATE', `too late to switch to post-copy: the migration is ${this.status}`);
    }
    this.#ctx.requests.postcopy = true;
  }

  /**
   * Post-copy recovery: reconnect now instead of waiting for the next back-off. Returns false
   * when there is nothing to do because the link is already back (automatic recovery won).
   */
  resumeNow(): boolean {
    const ctx = this.#ctx;
    if (this.status === 'postcopy' && (ctx.postcopy?.recoveries ?? 0) > 0) return false;
    if (this.status !== 'postcopy-paused') {
      throw new MigrationError('ERR_VM_STATE', `nothing to resume: the migration is ${this.status}`);
    }
    ctx.retryNow?.();
    return true;
  }

  /** Run to the end. Never throws: the outcome is in the report. */
  async run(): Promise<MigrationReport> {
    const ctx = this.#ctx;
    ctx.setVmState('migrating-out');
    ctx.startDirtyRate = startDirtyRate(ctx.vm.memory);
    let error: MigrationError | undefined;
    try {
      await setupPhase(ctx);
      const disk = ctx.s.disk;
      if (ctx.mode === 'postcopy' && disk && (disk.storage === 'copy' || disk.storage === 'mirror')) {
        await diskPrecopyPhase(ctx, disk);
      }
      await autoDecideAtSetup(ctx);
      let next = ctx.mode === 'postcopy' ? 'postcopy' : await precopyPhase(ctx);
      // Memory converged, the disk is fetched on demand: a post-copy switchover with no page absent.
      if (next === 'stopcopy' && disk?.storage === 'postcopy') next = 'postcopy';
      if (next === 'stopcopy') {
        await stopCopyPhase(ctx);
        await handoffPhase(ctx, 'stopcopy');
      } else {
        await postcopyStartPhase(ctx);
        await handoffPhase(ctx, 'postcopy-start');
        await postcopyPhase(ctx);
      }
      ctx.setVmState('migrated');
      ctx.sections?.disk?.finish();
      await recordPhase(ctx);
      await ctx.channels.close();
      ctx.machine.transition(['handoff', 'postcopy'], 'completed');
    } catch (caught) {
      error = ctx.signal.aborted ? toMigrationError(ctx.signal.reason) : toMigrationError(caught);
      await rollbackPhase(ctx, error);
      ctx.sections?.disk?.finish();
    }
    const outcome = this.status === 'completed' ? 'completed' : this.status === 'cancelled' ? 'cancelled' : 'failed';
    ctx.liftThrottle(`the migration ${outcome}`);
    ctx.record ??= sourceOnlyRecord(ctx, outcome, error);
    try {
      // Kept (the audit log, fsynced) before anyone hears of the outcome.
      await ctx.keepRecord?.(ctx.record);
    } catch (keepError) {
      ctx.logger.error({ event: 'record.unkept', err: keepError }, 'the migration record could not be kept');
    }
    ctx.startDirtyRate.cancel('the migration ended');
    // The compression threads, if any ran, and the parallel channels' workers: none outlives its migration.
    await ctx.sections?.ram.close().catch(() => undefined);
    await stopMultifd(ctx);
    await ctx.channels.stopFaultWorker();
    await ctx.startDirtyRate.done;
    this.#report = buildReport(ctx, outcome, error);
    ctx.emit('MIGRATION_REPORT', { migrationId: this.id, report: this.#report });
    return this.#report;
  }

  /** Live figures for `query-migrate`. */
  info(): MigrationInfo {
    return liveInfo(this.#ctx);
  }
}
