/**
 * The sections of one outgoing migration, and what the engine does over all of them. The RAM
 * section is also named on its own: post-copy (absent map, push, requests) is RAM's today.
 */
import { negotiatedEncodings, type SetupMsg } from '@livemig/shared/protocol';
import { DEFAULT_ENCODING_PARAMS, type EncodingParams } from './ram/encoding-policy.ts';
import type { MigrationContext } from '../context.ts';
import { cpuSection } from './cpu.ts';
import { devicesSection } from './devices.ts';
import { DiskSection } from './disk/disk-section.ts';
import { RamSection } from './ram/ram-section.ts';
import type { OutgoingSection } from './section.ts';

export interface SectionSet {
  readonly all: readonly OutgoingSection[];
  readonly ram: RamSection;
  /** The VM's disk, or undefined for a VM without one. */
  readonly disk: DiskSection | undefined;
}

/**
 * A pure post-copy's: it has no rounds, and its pusher sends raw pages, so no encoding could run.
 * With the default --compress auto a compression thread would start beside Setup all the same,
 * and boot — a V8 isolate, on a core the switchover that follows Setup at once needs — for nothing.
 */
const NO_ENCODINGS: Readonly<EncodingParams> = Object.freeze({
  ...DEFAULT_ENCODING_PARAMS,
  delta: 'off',
  dedup: 'off',
  compress: 'off',
});

/**
 * Build the sections of this VM, using what the destination negotiated. `multifd`: parallel bulk
 * channels were asked for — RAM keeps its page hashes where their workers can add to them.
 */
export function createSections(ctx: MigrationContext, multifd = false): SectionSet {
  const caps = ctx.channels.capabilities;
  const channel = () => ctx.channels.main;
  const ram = new RamSection({
    vm: ctx.vm,
    channel,
    stats: ctx.stats,
    bucket: ctx.bucket,
    postcopyRateBps: ctx.params.maxPostcopyBandwidthBps,
    logger: ctx.logger,
    signal: ctx.signal,
    capabilities: {
      setupBitmap: caps.has('setup-bitmap'),
      zeroPages: caps.has('zero-pages'),
      ...negotiatedEncodings(caps),
    },
    encodings: ctx.mode === 'postcopy' ? NO_ENCODINGS : (ctx.params.encodings ?? DEFAULT_ENCODING_PARAMS),
    // Pre-copy of memory with post-copy of the disk: RAM is complete at the switchover.
    completeAtSwitchover: ctx.mode === 'precopy',
    sharedPageHashes: multifd,
  });
  const virtualDisk = ctx.vm.virtualDisk;
  const disk = virtualDisk
    ? new DiskSection({
        disk: virtualDisk,
        storage: ctx.params.storage,
        channel,
        bucket: ctx.bucket,
        logger: ctx.logger,
        signal: ctx.signal,
      })
    : undefined;
  // Order matters at the stop point: memory and disk first, then the state that refers to them.
  const all = [ram, ...(disk ? [disk] : []), cpuSection(ctx.vm, channel), devicesSection(ctx.vm, channel)];
  return { all, ram, disk };
}

export function setupAll(sections: SectionSet, setup: SetupMsg): void {
  for (const section of sections.all) section.setup?.(setup);
}

/** Bytes still to send, over every section: the switchover rule's input. */
export function pendingBytes(sections: SectionSet): number {
  return sections.all.reduce((sum, section) => sum + section.pending(), 0);
}

export function startRound(sections: SectionSet, round: number): void {
  for (const section of sections.all) section.startRound?.(round);
}

/** Give every section up to `budgetBytes` of this round; true once every section's round is done. */
export async function iterateAll(sections: SectionSet, budgetBytes: number): Promise<boolean> {
  let done = true;
  for (const section of sections.all) {
    if (section.iterate && !(await section.iterate(budgetBytes))) done = false;
  }
  return done;
}

export function endRound(sections: SectionSet): void {
  for (const section of sections.all) section.endRound?.();
}

/** The VM is paused: every section sends what it must (in order). */
export async function completeAll(sections: SectionSet, how: 'precopy' | 'postcopy'): Promise<void> {
  for (const section of sections.all) await section.complete(how);
}

/** Every section's digest that is final now, by section name. */
export function digestsOf(sections: SectionSet): Record<string, string> {
  const out: Record<string, string> = {};
  for (const section of sections.all) {
    const digest = section.digest();
    if (digest !== undefined) out[section.name] = digest;
  }
  return out;
}
