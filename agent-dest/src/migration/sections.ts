/**
 * The load side of each section (QEMU's load_state handlers): what the destination does with a
 * section's data, and its digest of what it loaded — computed here, from this VM, never copied
 * from the source. RAM's bytes arrive through the channel's page sink (PageApplier) before any
 * message is seen, so RAM only reports its digest; CPU and device state are imported from
 * their messages and hashed as exported again from this VM, so what is compared is what the
 * VM will run with.
 */
import { MigrationError } from '@livemig/shared';
import type { PageApplier } from '@livemig/shared/channel';
import { MsgType, type CpuStateMsg, type DeviceStateMsg } from '@livemig/shared/protocol';
import { cpuStateDigest, deviceStateDigest, mismatchedSections, type ToyVm } from '@livemig/shared/vm';
import type { DiskLoad } from './disk-load.ts';

export interface IncomingSection {
  readonly name: string;
  /** Message types whose content this section loads. */
  readonly loads: readonly MsgType[];
  load(message: CpuStateMsg | DeviceStateMsg): void;
  /** This side's digest of what it holds, once final; undefined before. */
  digest(): string | undefined;
}

class RamLoad implements IncomingSection {
  readonly name = 'ram';
  readonly loads: readonly MsgType[] = [];
  readonly #applier: PageApplier;
  constructor(applier: PageApplier) {
    this.#applier = applier;
  }
  load(): void {
    throw new MigrationError('ERR_INTERNAL', 'RAM is loaded by the page sink, not by messages');
  }
  digest(): string {
    return this.#applier.digest();
  }
}

/** A section loaded from one message at the stop point; `load` imports it and returns the digest of what the VM now holds. */
class StopPointLoad implements IncomingSection {
  readonly name: string;
  readonly loads: readonly MsgType[];
  readonly #load: (message: CpuStateMsg | DeviceStateMsg) => string;
  #digest: string | undefined;
  constructor(name: string, type: MsgType, load: (message: CpuStateMsg | DeviceStateMsg) => string) {
    this.name = name;
    this.loads = [type];
    this.#load = load;
  }
  load(message: CpuStateMsg | DeviceStateMsg): void {
    this.#digest = this.#load(message);
  }
  digest(): string | undefined {
    return this.#digest;
  }
}

/** The disk: its blocks come in DiskBlocks (disk-load.ts applies them); here only its digest. */
class DiskSectionLoad implements IncomingSection {
  readonly name = 'disk';
  readonly loads: readonly MsgType[] = [];
  readonly #disk: DiskLoad;
  constructor(disk: DiskLoad) {
    this.#disk = disk;
  }
  load(): void {
    throw new MigrationError('ERR_INTERNAL', 'the disk is loaded by DiskBlocks, not by state messages');
  }
  digest(): string | undefined {
    return this.#disk.digest();
  }
}

export class IncomingSections {
  readonly all: readonly IncomingSection[];
  readonly disk: DiskLoad | undefined;

  constructor(vm: ToyVm, applier: PageApplier, disk?: DiskLoad) {
    this.disk = disk;
    this.all = [
      new RamLoad(applier),
      ...(disk ? [new DiskSectionLoad(disk)] : []),
      new StopPointLoad('cpu', MsgType.CpuState, (message) => {
        vm.importCpuState((message as CpuStateMsg).registers);
        return cpuStateDigest(vm.exportCpuState());
      }),
      new StopPointLoad('devices', MsgType.DeviceState, (message) => {
        vm.importDeviceState((message as DeviceStateMsg).state);
        return deviceStateDigest(vm.exportDeviceState());
      }),
    ];
  }

  /** Hand a state message to the section that loads it. */
  load(message: CpuStateMsg | DeviceStateMsg): void {
    const section = this.all.find((s) => s.loads.includes(message.type));
    if (!section) throw new MigrationError('ERR_INTERNAL', `no section loads message type ${message.type}`);
    section.load(message);
  }

  /** Our digests of `names`. */
  digests(names: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const section of this.all) {
      if (!names.includes(section.name)) continue;
      const digest = section.digest();
      if (digest !== undefined) out[section.name] = digest;
    }
    return out;
  }

  /**
   * Compare the source's digests of `names` with ours; ERR_DIGEST_MISMATCH naming each section
   * that differs (or that either side lacks). Returns ours, for Ready / Complete.
   */
  verify(source: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
    const ours = this.digests(names);
    const bad = mismatchedSections(source, ours, names);
    if (bad.length) {
      const detail = bad.map((n) => `${n}: received ${ours[n] ?? 'none'} ≠ source ${source[n] ?? 'none'}`);
      throw new MigrationError('ERR_DIGEST_MISMATCH', `refusing to run a damaged VM — ${detail.join('; ')}`);
    }
    return ours;
  }

  /** What is complete before a post-copy VM runs: every section but RAM, and the disk unless it too moves in post-copy. */
  get stateNames(): string[] {
    return this.names.filter((name) => !this.postcopyNames.includes(name));
  }

  /** What post-copy completes after the VM runs: RAM, and the disk when it moves in post-copy. */
  get postcopyNames(): string[] {
    return this.disk?.storage === 'postcopy' ? ['ram', 'disk'] : ['ram'];
  }

  get names(): string[] {
    return this.all.map((s) => s.name);
  }
}
