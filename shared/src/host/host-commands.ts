/**
 * The control commands every agent answers about the VMs it hosts: query-vms, stop, cont,
 * digest, destroy-vm. The daemons add their own (migrate… on the source). `digest` hashes all of
 * guest memory: it runs in `digests`' worker thread, at most one per VM at a time (vm-digests.ts).
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
      return { digest: await digests.digest(hosted.vm), steps: hosted.vm.steps, state: hosted.state };
    },
    'destroy-vm': async ({ vm }) => {
      const state = host.info(VmHost.checkName(vm)).state;
      if (state === 'migrating-out' || state === 'incoming') {
        throw new MigrationError('ERR_BUSY', `"${vm}" is ${state}; cancel the migration first`);
      }
      await host.remove(vm);
      return { destroyed: true };
    },
  };
}
