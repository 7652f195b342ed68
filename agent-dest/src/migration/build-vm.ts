/**
 * Setup on the destination: check the VM described by Setup against this agent's limits — its
 * size, its name, and the guest-memory budget (VmHost.reserve), then the admission the caller
 * gives (the ticket), all before a byte is allocated — build
 * an empty VM (zero memory, no CPU state, vCPU parked; post-copy and hybrid: every page absent),
 * get its address ready (everything short of taking it, so a host that cannot give the VM its
 * address fails here, while the source still runs the VM), put it under the host's name table
 * as `incoming`, point the page sink at its memory, and start touching the pages that will
 * arrive in a worker ahead of the receiver (prefault.ts). And at Handoff, resumeHere(): the VM
 * runs on this host from then on.
 */
import type { Logger } from 'pino';
import { MigrationError } from '@livemig/shared';
import { msg, type PageApplier, type PeerChannel } from '@livemig/shared/channel';
import type { NicBackend, VmHost } from '@livemig/shared/host';
import type { SetupMsg } from '@livemig/shared/protocol';
import {
  Bitmap,
  PAGE_SIZE,
  PageDigestLedger,
  parseVmSpec,
  startPrefault,
  ToyVm,
  type Prefault,
} from '@livemig/shared/vm';
import { SharedPageHashes } from '@livemig/shared/multifd';

export interface BuiltVm {
  name: string;
  vm: ToyVm;
  prefault: Prefault | undefined;
  /** Setup asked for parallel bulk channels: the page-hash table their workers and the applier share. */
  pageHashes: SharedPageHashes | undefined;
}

export interface BuildComponents {
  host: VmHost;
  applier: PageApplier;
  logger: Logger;
  /** Largest VM accepted. */
  maxMemoryBytes: number;
  /** Setup may carry a page bitmap (negotiated `setup-bitmap`). */
  setupBitmap: boolean;
  /** Setup may carry a disk (negotiated `disk`). @default false */
  disk?: boolean;
  /** Setup may ask for host content (negotiated `dedup-host` with `dedup`). @default false */
  hostContent?: boolean;
  /** Setup may ask for parallel bulk channels (negotiated `multifd`). @default false */
  multifd?: boolean;
  /**
   * May this Setup build a VM here? Throws the refusal. Runs once the Setup is known to fit —
   * name and budget — so a ticket is spent only by a Setup this agent can take, and before
   * anything is reserved or allocated. @default everything is admitted
   */
  admit?: () => void;
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
    disk: setup.disk?.sizeBytes ?? null,
  });
  if (setup.disk && !c.disk) {
    throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'Setup carries a disk, but disk was not negotiated');
  }
  if (setup.hostContent !== undefined && !c.hostContent) {
    throw new MigrationError(
      'ERR_UNEXPECTED_MESSAGE',
      'Setup asks for host content, but dedup-host (with dedup) was not negotiated',
    );
  }
  if (setup.channels !== undefined && !c.multifd) {
    throw new MigrationError(
      'ERR_UNEXPECTED_MESSAGE',
      'Setup asks for parallel channels, but multifd was not negotiated',
    );
  }
  const name = setup.vm.name;
  const what = `incoming VM "${name}"`;
  const refused = host.refuses(name, spec.memoryBytes, what);
  if (refused) throw refused;
  c.admit?.();
  const reservation = host.reserve(name, spec.memoryBytes, what);
  let vm: ToyVm;
  let net: NicBackend | null;
  try {
    const diskOptions = setup.disk ? await host.incomingDiskOptions(name, spec, setup.disk.storage) : {};
    const postcopy = setup.mode !== 'precopy' || setup.disk?.storage === 'postcopy';
    vm = await ToyVm.createIncoming(spec, { postcopy, ...diskOptions });
    try {
      net = await host.prepareNic(vm, logger.child({ vm: name }));
    } catch (error) {
      await vm.destroy();
      throw error;
    }
    host.adopt(name, vm, 'incoming', net ?? undefined);
  } finally {
    reservation.release();
  }
  // With parallel channels, their workers hash the pages they write into the ledger's own table.
  const pageHashes = setup.channels !== undefined ? new SharedPageHashes(vm.memory.pageCount) : undefined;
  applier.attach(vm.memory, new PageDigestLedger(vm.memory.pageCount, pageHashes?.buffer));
  const prefault = setup.bitmap
    ? startPrefault(vm.memory, Bitmap.fromBytes(setup.bitmap, vm.memory.pageCount).toPageList())
    : undefined;
  return { name, vm, prefault, pageHashes };
}

/**
 * Handoff: take the VM's address (the source let go of it before sending Handoff; a bind, or
 * bringing a link up, goes on while the vCPU resumes), resume the vCPU, answer Resumed with how
 * long that took (and, pre-copy, `stats`: what only this side measured, gathered before Handoff
 * so it costs the downtime nothing). Returns where the guest stood when it resumed (for steps/s
 * during post-copy).
 */
export function resumeHere(
  host: VmHost,
  built: { name: string; vm: ToyVm },
  channel: PeerChannel,
  logger: Logger,
  mode: 'running' | 'postcopy',
  stats?: Record<string, unknown>,
): { steps: number; at: number } {
  const { name, vm } = built;
  const received = performance.now();
  host
    .get(name)
    .net?.take()
    .catch((error: unknown) => {
      logger.error({ err: error, event: 'nic.take-failed' }, 'the VM runs here but could not take its address');
    });
  const resumedAt = { steps: vm.steps, at: performance.now() };
  vm.resume();
  host.setState(name, 'running');
  void host.settleIncomingDisk(name).catch((error: unknown) => {
    logger.warn({ err: error, event: 'disk.settle-failed' }, 'could not remove the incoming mark of the disk image');
  });
  channel.send(msg.resumed(performance.now() - received, stats));
  logger.info({ event: 'vm.resumed', vm: name, mode }, 'the VM runs here now');
  return resumedAt;
}
