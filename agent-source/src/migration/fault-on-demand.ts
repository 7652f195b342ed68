/**
 * `fault-on-demand`: a hybrid migration asks for the destination's fault thread when it may
 * switch to post-copy, not at Setup. `--mode auto` starts as hybrid so that every technique stays
 * possible, and used to pay for the fault threads on both sides before round 0 even when it then
 * chose pre-copy: `livemig compare` measured auto's setup at 164–331 ms against pre-copy's
 * 33–69 ms, and every `auto:total-time` cell 0.16–0.34 s slower than the pre-copy it chose.
 *
 *   plain hybrid     asks right after SetupDone: round 0 runs while both threads start
 *   --mode auto      asks once it chooses post-copy or hybrid (auto.ts); never, choosing pre-copy
 *   the switch       asks now if nobody did (postcopy-start.ts); a switch decided mid-round lets
 *                    the round go on until the channel is open (precopy.ts)
 *
 * Asking: start this side's fault worker, send FaultOpen, and open the fault channel where
 * FaultListening says (at the main port when it names no thread). An answer that does not come
 * within FAULT_LISTENING_TIMEOUT_MS fails the migration before the switch: the VM runs on here.
 */
import { MigrationError } from '@livemig/shared';
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import type { FaultListeningMsg } from '@livemig/shared/protocol';
import type { MigrationContext } from './context.ts';
import type { FaultThreadAddress } from './channels.ts';
import { startFaultWorker } from './fault-worker.ts';

/** How long the destination may take to start its fault thread and say where it listens. */
export const FAULT_LISTENING_TIMEOUT_MS = 10_000;

/** True when this migration opens its fault channel on demand (hybrid, with both capabilities negotiated). */
export function usesFaultOnDemand(ctx: MigrationContext): boolean {
  const caps = ctx.channels.capabilities;
  return ctx.mode === 'hybrid' && caps.has('fault-thread') && caps.has('fault-on-demand');
}

/** Ask the destination for its fault thread (once), and open the fault channel in the background. */
export function requestFaultChannel(ctx: MigrationContext): void {
  if (!usesFaultOnDemand(ctx) || ctx.channels.faultRequested) return;
  const main = ctx.channels.main;
  startFaultWorker(ctx);
  // Stops waiting when the migration is aborted or its channels close (a hybrid that converged).
  const address = faultListening(main, AbortSignal.any([ctx.signal, ctx.channels.closing]));
  main.send(msg.faultOpen());
  ctx.logger.debug({ event: 'fault.requested' }, 'asked the destination for its fault thread');
  ctx.channels.openFaultWhen(address);
}

/** Before the switch to post-copy: the fault channel open (asked for now if it was not). */
export async function faultChannelReady(ctx: MigrationContext): Promise<void> {
  requestFaultChannel(ctx);
  await ctx.channels.faultReady();
}

/** The destination's FaultListening, as an address (undefined: no thread, attach at the main port). */
function faultListening(main: PeerChannel, signal: AbortSignal): Promise<FaultThreadAddress | undefined> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        settle(() =>
          reject(
            new MigrationError(
              'ERR_TIMEOUT',
              `the destination did not say where its fault thread listens within ${FAULT_LISTENING_TIMEOUT_MS} ms of FaultOpen`,
            ),
          ),
        ),
      FAULT_LISTENING_TIMEOUT_MS,
    );
    const onAbort = (): void => settle(() => reject(new MigrationError('ERR_CONNECTION', 'the migration was aborted')));
    const unroute = main.route(MsgType.FaultListening, (m: FaultListeningMsg) =>
      settle(() =>
        resolve(
          m.faultPort !== undefined && m.faultToken !== undefined
            ? { port: m.faultPort, token: m.faultToken }
            : undefined,
        ),
      ),
    );
    function settle(action: () => void): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unroute();
      signal.removeEventListener('abort', onAbort);
      action();
    }
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    main.whenFailed().then(
      (error) => settle(() => reject(error)),
      () => {},
    );
  });
}
