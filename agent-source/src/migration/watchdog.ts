/**
 * The stop-and-copy watchdog (ARCHITECTURE.md §4, §8). From the moment the vCPU pauses for the
 * switchover until Handoff is sent, the source owns a paused VM and waits on the destination —
 * for it to take the last pages and to say Ready. A destination that stops answering (frozen,
 * SIGSTOPped, cut off without a reset) must not keep the guest paused: `switchoverTimeoutMs`
 * after the pause the watchdog aborts the migration with ERR_SWITCHOVER_TIMEOUT, and rollback
 * (phases/rollback.ts) resumes the VM here and closes the connections with that Error. The
 * destination, whenever it runs again, discards its copy: it never got Handoff, and the one
 * connection Handoff could come on is gone, so a late Ready is answered by a closed connection.
 *
 * The watchdog can never fire past the point of no return: Handoff disarms it before it is sent,
 * and the timer checks that the source still owns the VM. Not while the agent shuts down: then
 * the VM dies with this process unless the switchover finishes, so waiting is its only chance.
 */
import { MigrationError } from '@livemig/shared';
import type { MigrationContext } from './context.ts';
import { SOURCE_OWNS_VM } from './status.ts';

/** Arm the watchdog for a VM paused now; returns the function that disarms it. */
export function armSwitchoverWatchdog(ctx: MigrationContext): () => void {
  const timeoutMs = ctx.switchoverTimeoutMs;
  const timer = setTimeout(() => {
    if (ctx.signal.aborted || !SOURCE_OWNS_VM.includes(ctx.machine.state)) return;
    if (ctx.requests.shutdown) {
      ctx.logger.warn(
        { event: 'switchover.timeout', timeoutMs, status: ctx.machine.state },
        'switchover timeout passed while the agent shuts down: waiting on, the VM dies with this process otherwise',
      );
      return;
    }
    ctx.logger.warn(
      { event: 'switchover.timeout', timeoutMs, status: ctx.machine.state },
      'the destination did not say Ready within the switchover timeout: resuming the VM here',
    );
    ctx.abort.abort(
      new MigrationError(
        'ERR_SWITCHOVER_TIMEOUT',
        `the destination did not answer Ready within ${Math.round(timeoutMs)} ms of the pause (switchover-timeout)` +
          `${expectedNote(ctx, timeoutMs)}; the VM was resumed here`,
      ),
    );
  }, timeoutMs);
  return () => clearTimeout(timer);
}

/** Why a switchover predicted to take longer than the timeout was bound to hit it. */
function expectedNote(ctx: MigrationContext, timeoutMs: number): string {
  const expected = ctx.switchover?.expectedDowntimeMs ?? 0;
  return expected > timeoutMs
    ? ` — the switchover was predicted to take ${Math.round(expected)} ms: raise --switchover-timeout`
    : '';
}
