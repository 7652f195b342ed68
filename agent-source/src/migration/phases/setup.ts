/**
 * Setup: connect (Hello/Welcome), check the destination negotiated what this mode needs, build
 * the sections from what it negotiated, send Setup (each section adds its part) and wait for
 * SetupDone — the destination has built an empty VM. Post-copy and hybrid open the fault
 * channel now, so it is there the moment the VM resumes on the other side (with
 * `fault-on-demand`, a hybrid asks for it now and --mode auto once it chose: fault-on-demand.ts).
 */
import { MigrationError } from '@livemig/shared';
import { msg, MsgType, type PeerIdentity } from '@livemig/shared/channel';
import type { SecurityReport } from '@livemig/shared/report';
import type { Capability, SetupVm, StorageMode } from '@livemig/shared/protocol';
import type { MigrationContext } from '../context.ts';
import { createSections, setupAll } from '../sections/index.ts';
import { startFaultWorker } from '../fault-worker.ts';
import { requestFaultChannel, usesFaultOnDemand } from '../fault-on-demand.ts';
import { channelsToAsk, openMultifd, startMultifd } from '../multifd.ts';

/** What each mode needs the destination to have negotiated. */
export const MODE_NEEDS: Readonly<Record<MigrationContext['mode'], readonly Capability[]>> = {
  precopy: [],
  postcopy: ['postcopy', 'fault-channel'],
  hybrid: ['postcopy', 'fault-channel'],
};

/** What each storage mode needs the destination to have negotiated, for a VM with a disk. */
export const STORAGE_NEEDS: Readonly<Record<StorageMode, readonly Capability[]>> = {
  shared: ['disk'],
  copy: ['disk'],
  mirror: ['disk'],
  postcopy: ['disk', 'postcopy', 'fault-channel'],
};

/** True when the VM may run on the destination before everything is there (a fault channel is needed). */
export function runsWithPartsAbsent(ctx: MigrationContext): boolean {
  return ctx.mode !== 'precopy' || ctx.s.disk?.storage === 'postcopy';
}

/** What the report says of the main connection's protection: TLS as negotiated, or null on plaintext. */
function securityOf(ctx: MigrationContext, peer: PeerIdentity | undefined): SecurityReport | null {
  if (!peer) return null;
  // A TLS connection is made only with this agent's own certificate: its name is known, never "".
  if (ctx.sourceName === undefined) throw new MigrationError('ERR_INTERNAL', 'a TLS migration without our own name');
  return {
    tls: peer.protocol.replace(/^TLSv/, ''),
    cipher: peer.cipher,
    sourceName: ctx.sourceName,
    destName: peer.name,
    ticket: ctx.ticket !== '',
  };
}

/** The VM as Setup describes it (and the migration record hashes it). */
export function setupVmOf(ctx: MigrationContext): SetupVm {
  const { vm, hosted } = ctx;
  return {
    name: hosted.name,
    memoryBytes: vm.spec.memoryBytes,
    pageSize: vm.memory.pageSize,
    workload: vm.spec.workload,
    init: vm.spec.init,
    seed: vm.spec.seed,
    nic: vm.spec.nic ?? '',
  };
}

export async function setupPhase(ctx: MigrationContext): Promise<void> {
  const { logger, stats } = ctx;
  ctx.machine.transition('none', 'setup');
  // The handoff will give the VM's address up inside the downtime: ready that now (a fork here,
  // while the VM runs, not there).
  ctx.hosted.net?.prepareGive();
  const channel = await ctx.channels.openMain();
  ctx.security = securityOf(ctx, channel.peer);
  ctx.destParty = channel.peer ? { name: channel.peer.name, fingerprint: channel.peer.fingerprint } : null;
  ctx.destAgentName = channel.peer?.name ?? channel.remoteAgentId;
  const missing = MODE_NEEDS[ctx.mode].filter((c) => !channel.capabilities.has(c));
  if (missing.length) {
    throw new MigrationError(
      'ERR_UNSUPPORTED',
      `the destination did not negotiate ${missing.join(', ')}, which --mode ${ctx.mode} needs; the VM keeps running here`,
    );
  }
  // The destination's fault thread answers faults off its main thread: the source's fault worker
  // does so here too, and starts loading now, beside Setup (fault-worker.ts) — or, on demand,
  // once the fault channel is asked for (fault-on-demand.ts).
  const onDemand = usesFaultOnDemand(ctx);
  if (ctx.mode !== 'precopy' && channel.capabilities.has('fault-thread') && !onDemand) startFaultWorker(ctx);
  const diskMissing = ctx.vm.virtualDisk
    ? STORAGE_NEEDS[ctx.params.storage].filter((c) => !channel.capabilities.has(c))
    : [];
  if (diskMissing.length) {
    throw new MigrationError(
      'ERR_UNSUPPORTED',
      `the VM has a disk: the destination did not negotiate ${diskMissing.join(', ')}, which --storage ` +
        `${ctx.params.storage} needs; the VM keeps running here`,
    );
  }
  const multifdChannels = channelsToAsk(ctx);
  const sections = createSections(ctx, multifdChannels !== undefined);
  ctx.sections = sections;
  startMultifd(ctx, multifdChannels);
  const setup = msg.setup({
    migrationId: ctx.id,
    mode: ctx.mode,
    ticket: ctx.ticket,
    vm: setupVmOf(ctx),
    ...(multifdChannels === undefined ? {} : { channels: multifdChannels }),
  });
  setupAll(sections, setup);
  const setupSent = performance.now();
  channel.send(setup);
  const done = await channel.expect(MsgType.SetupDone, ctx.signal);
  // Less the time the destination spent choosing host content: this bounds the link's RTT.
  ctx.setupRoundTripMs = Math.max(0, performance.now() - setupSent - (done.hostMs ?? 0));
  // Before round 0: the host content the destination offered (when RAM asked for it) is referable.
  sections.ram.setupDone(done);
  // Parallel bulk channels, when asked for and named: every one attached before round 0.
  await openMultifd(ctx, multifdChannels, done);
  // `fault-thread`: the destination's fault channel is a thread of its own, on its own port.
  if (done.faultPort !== undefined && done.faultToken !== undefined && channel.capabilities.has('fault-thread')) {
    ctx.channels.useFaultThread({ port: done.faultPort, token: done.faultToken });
  }
  // Hybrid: pre-copy first, so a fault thread's channel may finish opening during round 0 — on
  // demand, asked for now by a plain hybrid, by --mode auto once it chose (auto.ts).
  if (onDemand) {
    if (!ctx.params.auto) requestFaultChannel(ctx);
  } else if (ctx.mode === 'hybrid' && ctx.channels.faultThread) ctx.channels.openFaultSoon();
  else if (runsWithPartsAbsent(ctx)) await ctx.channels.openFault();
  stats.setupMs = stats.elapsedMs;
  logger.info({ event: 'setup.done', setupMs: stats.setupMs, mode: ctx.mode }, 'destination ready for pages');
}
