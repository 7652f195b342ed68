/**
 * Post-copy recovery: the link broke while the VM runs on the destination with pages still
 * here. Reconnect on the back-off schedule (backoff.ts) — or at once on migrate-resume — until
 * the recovery timeout; the destination answers Attach resume with the pages it still lacks,
 * a new fault channel joins, and the push goes on. Timing out means the VM is lost.
 */
import { MigrationError, toMigrationError } from '@livemig/shared';
import { MsgType } from '@livemig/shared/channel';
import { recoveryDelayMs } from '../backoff.ts';
import type { MigrationContext } from '../context.ts';

export async function recoverPhase(ctx: MigrationContext, error: MigrationError): Promise<void> {
  const { logger } = ctx;
  const ram = ctx.s.ram;
  ctx.machine.transition('postcopy', 'postcopy-paused');
  logger.warn(
    { event: 'postcopy.paused', err: error, remaining: ram.pusher?.remaining },
    'link lost during post-copy: the VM on the destination blocks on missing pages; reconnecting',
  );
  await ctx.channels.close(error);
  const timeoutMs = ctx.params.recoveryTimeoutMs;
  const deadline = performance.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const main = await ctx.channels.reattachMain();
      const missing = await main.expect(MsgType.Missing, ctx.signal);
      const disk = ctx.s.disk?.storage === 'postcopy' ? ctx.s.disk : undefined;
      const diskMissing = disk ? await main.expect(MsgType.DiskMissing, ctx.signal) : undefined;
      await ctx.channels.openFault();
      ram.resync(missing.bitmap);
      if (disk && diskMissing) disk.resync(diskMissing.bitmap);
      if (ctx.postcopy) ctx.postcopy.recoveries += 1;
      ctx.machine.transition('postcopy-paused', 'postcopy');
      logger.info({ event: 'postcopy.recovered', attempt, remaining: ram.pusher?.remaining }, 'reconnected; resuming');
      return;
    } catch (attemptError) {
      const failure = toMigrationError(attemptError);
      await ctx.channels.close(failure);
      if (ctx.signal.aborted) throw failure;
      const delay = recoveryDelayMs(attempt, deadline - performance.now());
      if (delay === null) {
        throw new MigrationError(
          'ERR_CONNECTION',
          `post-copy could not reconnect within ${timeoutMs} ms (${failure.message}): the VM is lost — it was ` +
            `running on the destination with ${ram.pusher?.remaining ?? '?'} pages still here`,
          { cause: attemptError },
        );
      }
      logger.info({ event: 'postcopy.retry', attempt, inMs: delay }, 'reconnect failed; retrying');
      await waitOrRetryNow(ctx, delay);
    }
  }
}

/** Sleep `ms`, or less if the operator asks to retry now (migrate-resume). */
function waitOrRetryNow(ctx: MigrationContext, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      ctx.retryNow = undefined;
      resolve();
    }
    ctx.retryNow = done;
  });
}
