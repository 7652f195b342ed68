/**
 * The control commands every agent answers about the VMs it hosts: query-vms, stop, cont,
 * digest, destroy-vm. The daemons add their own (migrate… on the source). `digest` hashes all of
 * guest memory: it runs in `digests`' worker thread, at most one per VM at a time (vm-digests.ts),
 * and never while the VM migrates: its memory is in flux (the answer would be stale at once), and
 * hashing it competes with the migration for the CPU and memory bandwidth the copy needs (eight
 * clients asking it in a loop made a 256 MiB migration 1.5× slower; without it, 1.02×).
 */
import { MigrationError } from '../errors.ts';
import type { CommandHandlers } from '../control/server.ts';
import type { VmDigests } from './vm-digests.ts';
import { VmHost } from './vm-host.ts';

/** What the host commands use besides the host. */
export interface HostCommandComponents {
  /** Where `digest` hashes memory: off the event loop, one digest per VM at a time. */
  digests: VmDigests;
}

export function hostCommandHandlers(host: VmHost, { digests }: HostCommandComponents): CommandHandlers {
  return {
    'query-vms': () => ({ vms: host.list() }),
    stop: async ({ vm }) => host.stop(VmHost.checkName(vm)),
    cont: ({ vm, force }) => host.cont(VmHost.checkName(vm), { force: force === true }),
    digest: async ({ vm }) => {
      const hosted = host.get(VmHost.checkName(vm));
      refuseWhileMigrating(hosted.state, vm, 'ask for its digest when the migration has ended');
      const digest = await digests.digest(hosted.vm);
      // The disk only while paused (its device drained): a running guest's image is in flux.
      const disk = hosted.vm.status === 'paused' ? await hosted.vm.diskDigest() : null;
      return { digest, steps: hosted.vm.steps, state: hosted.state, ...(disk !== null ? { disk } : {}) };
    },
    'destroy-vm': async ({ vm }) => {
      refuseWhileMigrating(host.info(VmHost.checkName(vm)).state, vm, 'cancel the migration first');
      await host.remove(vm);
      return { destroyed: true };
    },
  };
}

/** ERR_BUSY for a VM in a migration (either way), saying what to do instead. */
function refuseWhileMigrating(state: string, vm: string, instead: string): void {
  if (state === 'migrating-out' || state === 'incoming') {
    throw new MigrationError('ERR_BUSY', `"${vm}" is ${state}; ${instead}`);
  }
}
