/**
 * `query-dirty-rate` on an agent: QMP's `calc-dirty-rate` and `query-dirty-rate` in one request
 * that answers once the window is over (QEMU starts a thread and is polled; a control request
 * that waits is simpler here and costs nothing while it waits). The measurement itself is
 * shared/src/vm/dirty-rate.ts: hash a sample of pages, wait, hash them again.
 *
 * Which VMs: one running or paused here (a paused one measures ~0), and one migrating out — the
 * measurement only reads its memory, so the migration's dirty log and pace are untouched. Not
 * one whose memory is still being written by a migration into it (`incoming`, or post-copy with
 * pages still on the source): the figure would be the arrival rate of pages, not the guest's
 * (ERR_VM_STATE, saying so). At most one measurement per VM at a time, as QEMU ("the dirty rate
 * is already being measured"): another is refused with ERR_BUSY, so a client asking in a loop
 * holds one sample's hashes per VM, not one per request. stop() cancels the measurements in
 * their wait (ERR_CANCELLED).
 */
import { MigrationError } from '@livemig/shared';
import type { CommandArgs, DirtyRateInfo } from '@livemig/shared/control';
import { VmHost } from '@livemig/shared/host';
import { measureDirtyRate, resolveDirtyRateOptions, type DirtyRateComponents } from '@livemig/shared/vm';

/** What DirtyRateQueries uses. */
export interface DirtyRateQueriesComponents {
  host: Pick<VmHost, 'get'>;
  /** Why `vm` is still arriving here (post-copy), or undefined (IncomingMigrations.stillArriving). */
  stillArriving: (vm: string) => string | undefined;
  /** The measurement's clock and sleep, for tests. @default the real ones */
  measure?: Pick<DirtyRateComponents, 'sleep' | 'now' | 'wallClock' | 'seed'>;
}

export class DirtyRateQueries {
  readonly #c: DirtyRateQueriesComponents;
  /** VMs with a measurement in progress. */
  readonly #measuring = new Set<string>();
  readonly #stop = new AbortController();

  constructor(components: DirtyRateQueriesComponents) {
    this.#c = components;
  }

  /** The `query-dirty-rate` handler: checks the arguments first, then measures (see the header). */
  async query(args: CommandArgs<'query-dirty-rate'>): Promise<DirtyRateInfo> {
    const vm = VmHost.checkName(args.vm);
    const options = resolveDirtyRateOptions(args);
    const hosted = this.#c.host.get(vm);
    const arriving =
      hosted.state === 'incoming' ? 'it is incoming (a migration is writing its memory)' : this.#c.stillArriving(vm);
    if (arriving !== undefined) {
      throw new MigrationError(
        'ERR_VM_STATE',
        `cannot measure the dirty rate of "${vm}": ${arriving}; its memory changes as pages arrive, not as the guest writes`,
      );
    }
    if (this.#measuring.has(vm)) {
      throw new MigrationError(
        'ERR_BUSY',
        `the dirty rate of "${vm}" is already being measured; ask again when that ends`,
      );
    }
    this.#measuring.add(vm);
    try {
      const measured = await measureDirtyRate(hosted.vm.memory, options, {
        ...this.#c.measure,
        signal: this.#stop.signal,
      });
      return { vm, ...measured, method: 'page-sampling' };
    } finally {
      this.#measuring.delete(vm);
    }
  }

  /** Cancel every measurement in progress (the agent stops); later ones are refused the same way. */
  stop(reason: string): void {
    this.#stop.abort(reason);
  }
}
