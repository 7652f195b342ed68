/**
 * Setup on the destination: check the VM described by Setup against this agent's limits, build
 * an empty VM (zero memory, no CPU state, vCPU parked; post-copy and hybrid: every page absent),
 * get its address ready (everything short of taking it, so a host that cannot give the VM its
 * address fails here, while the source still runs the VM), put it under the host's name table
 * as `incoming`, point the page sink at its memory, and start touching the pages that will
 * arrive in a worker ahead of the receiver (prefault.ts).
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import type { PageApplier } from '@livemig/shared/channel';
import type { NicBackend, VmHost } from '@livemig/shared/host';
import type { SetupMsg } from '@livemig/shared/protocol';
import { Bitmap, PAGE_SIZE, parseVmSpec, startPrefault, ToyVm, type Prefault } from '@livemig/shared/vm';

export interface BuiltVm {
  name: string;
  vm: ToyVm;
  prefault: Prefault | undefined;
}

export interface BuildComponents {
  host: VmHost;
  applier: PageApplier;
  logger: Logger;
  /** Largest VM accepted. */
  maxMemoryBytes: number;
  /** Setup may carry a page bitmap (negotiated `setup-bitmap`). */
  setupBitmap: boolean;
}

export async function buildIncomingVm(setup: SetupMsg, c: BuildComponents): Promise<BuiltVm> {
  const { host, logger, applier } = c;
  if (setup.vm.pageSize !== PAGE_SIZE) {
    throw new MigrationError('ERR_HANDSHAKE', `page size ${setup.vm.pageSize} ≠ this agent's ${PAGE_SIZE}`);
  }
  if (setup.vm.memoryBytes > c.maxMemoryBytes) {
    throw new MigrationError(
      'ERR_HANDSHAKE',
      `VM of ${setup.vm.memoryBytes} bytes exceeds this agent's limit of ${c.maxMemoryBytes}`,
    );
  }
  if (setup.bitmap && !c.setupBitmap) {
    throw new MigrationError(
      'ERR_UNEXPECTED_MESSAGE',
      'Setup carries a page bitmap, but setup-bitmap was not negotiated',
    );
  }
  const spec = parseVmSpec({
    memory: setup.vm.memoryBytes,
    init: setup.vm.init,
    workload: setup.vm.workload,
    seed: setup.vm.seed,
    nic: setup.vm.nic,
  });
  const name = setup.vm.name;
  if (!host.isFree(name))
    throw new MigrationError('ERR_BUSY', `a VM named "${name}" already exists on the destination`);
  const vm = await ToyVm.createIncoming(spec, { postcopy: setup.mode !== 'precopy' });
  let net: NicBackend | null;
  try {
    net = await host.prepareNic(vm, logger.child({ vm: name }));
  } catch (error) {
    await vm.destroy();
    throw error;
  }
  host.adopt(name, vm, 'incoming', net ?? undefined);
  applier.attach(vm.memory);
  const prefault = setup.bitmap
    ? startPrefault(vm.memory, Bitmap.fromBytes(setup.bitmap, vm.memory.pageCount).toPageList())
    : undefined;
  return { name, vm, prefault };
}
