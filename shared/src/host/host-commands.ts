/**
 * The control commands every agent answers about the VMs it hosts: query-vms, stop, cont,
 * digest, destroy-vm. The daemons add their own (migrate… on the source).
 */
import { MigrationError } from '../errors.ts';
import type { CommandHandlers } from '../control/server.ts';
import { VmHost } from './vm-host.ts';

export function hostCommandHandlers(host: VmHost): CommandHandlers {
  return {
    'query-vms': () => ({ vms: host.list() }),
    stop: async ({ vm }) => host.stop(VmHost.checkName(vm)),
    cont: ({ vm, force }) => host.cont(VmHost.checkName(vm), { force: force === true }),
    digest: async ({ vm }) => {
      const hosted = host.get(VmHost.checkName(vm));
      return { digest: await hosted.vm.digest(), steps: hosted.vm.steps, state: hosted.state };
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
