/**
 * The VMs an agent hosts, by name. Both daemons use it: the source hosts VMs it may migrate
 * out, the destination hosts the VMs it received (and could later migrate them on). It owns
 * the operator-visible VM state — running | paused | migrating-out | incoming | migrated — and
 * refuses operator actions that would break a migration's ownership rules (e.g. `cont` on a
 * VM that is mid-migration).
 *
 * It also keeps the guest-memory budget (--max-guest-memory): the memory of every VM hosted
 * here plus the reservations of VMs about to be built (an incoming migration between its Setup
 * being admitted and its VM being adopted), so that concurrent Setups cannot each see room
 * that only one of them may take. Each VM is charged its guest memory plus what its vCPU worker
 * costs (VM_OVERHEAD_BYTES). A VM that does not fit is refused (ERR_NO_MEMORY) before anything
 * is allocated; the decision is admission.ts's.
 */
import { promises as fs } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { defaultGuestMemoryBudget, refuseGuestMemory, vmCharge, type GuestMemoryLedger } from '../admission.ts';
import { MigrationError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { ALLOC_MAP_SUFFIX } from '../vm/disk/image.ts';
import { LOCK_SUFFIX, lockImage } from '../vm/disk/lock.ts';
import { INCOMING_SUFFIX } from '../vm/disk/virtual-disk.ts';
import type { StorageMode } from '../protocol/message-types.ts';
import { ToyVm, type VmSpec } from '../vm/index.ts';
import type { Logger } from 'pino';
import { macForIp, type AddressMover, type VmAddress } from './net/address-mover.ts';
import { LoopbackAddress } from './net/loopback.ts';
import { NicBackend } from './net/nic-backend.ts';
import type { VmInfo, VmState } from './vm-state.ts';

export interface HostedVm {
  readonly name: string;
  readonly vm: ToyVm;
  state: VmState;
  /** The NIC's backend (socket + address), for a VM with a NIC. */
  readonly net?: NicBackend;
}

export interface VmHostOptions {
  /** Told of every operator-visible state change. */
  onState?: (name: string, state: VmState) => void;
  /** How this host gives a VM its address. @default loopback: bind the VM's ip:port on this host. */
  addressMover?: (address: VmAddress) => AddressMover;
  logger?: Logger;
  /** Guest memory this host may hold: hosted VMs plus reservations. @default half of physical memory */
  maxGuestMemoryBytes?: number;
  /**
   * Where the images of the disks of VMs booted here go, one file per VM (NAME.img, with its
   * allocation map beside it), removed with the VM. @default a temporary directory per VM
   */
  diskDir?: string;
}

/** A claim on a name and on guest memory for a VM about to be built here; adopt() takes it over. */
export interface Reservation {
  readonly name: string;
  readonly bytes: number;
  /** Give the claim back (a no-op once the VM was adopted, or when already released). */
  release(): void;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class VmHost {
  readonly #vms = new Map<string, HostedVm>();
  /** VMs migrated away: their memory is freed, their last figures kept for query-vms. */
  readonly #retired = new Map<string, VmInfo>();
  readonly #onState: (name: string, state: VmState) => void;
  readonly #addressMover: (address: VmAddress) => AddressMover;
  readonly #logger: Logger;
  /** Names and memory claimed by VMs not built yet. */
  readonly #reserved = new Map<string, Reservation>();
  readonly #budgetBytes: number;
  readonly #diskDir: string | undefined;

  constructor(options: VmHostOptions = {}) {
    this.#budgetBytes = options.maxGuestMemoryBytes ?? defaultGuestMemoryBudget(totalmem());
    this.#onState = options.onState ?? (() => {});
    this.#addressMover = options.addressMover ?? ((address) => new LoopbackAddress(address));
    this.#logger = options.logger ?? silentLogger();
    this.#diskDir = options.diskDir;
  }

  /**
   * A backend for the NIC of `vm` (null without one), prepared: a destination calls this in
   * Setup, so a host that cannot give the VM its address fails the migration before handoff.
   */
  async prepareNic(vm: ToyVm, logger: Logger): Promise<NicBackend | null> {
    if (!vm.nic) return null;
    const [ip, port] = vm.spec.nic!.split(':') as [string, string];
    const mover = this.#addressMover({ ip, port: Number(port), mac: macForIp(ip) });
    const net = new NicBackend({ vm, mover, logger });
    try {
      await net.prepare();
    } catch (error) {
      await net.dispose();
      throw error;
    }
    return net;
  }

  /** Check a VM name: 1–64 of letters, digits, '.', '_', '-', starting with a letter or digit. */
  static checkName(name: unknown): string {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `bad VM name ${JSON.stringify(name)}: use 1–64 letters, digits, '.', '_' or '-'`,
      );
    }
    return name;
  }

  /** Boot a VM from its spec and start it running (ERR_BUSY, ERR_NO_MEMORY before anything is allocated). */
  async create(name: string, spec: VmSpec): Promise<HostedVm> {
    const reservation = this.reserve(VmHost.checkName(name), spec.memoryBytes);
    try {
      const vm = await ToyVm.boot(spec, await this.#diskOptions(name, spec));
      let net: NicBackend | null = null;
      try {
        net = await this.prepareNic(vm, this.#logger.child({ vm: name }));
        await net?.take();
      } catch (error) {
        await net?.dispose();
        await vm.destroy();
        throw error;
      }
      vm.start();
      return this.adopt(name, vm, 'running', net ?? undefined);
    } finally {
      reservation.release();
    }
  }

  /**
   * Where an incoming VM's disk is: a new image at DISK_DIR/NAME.img (as for a VM booted here),
   * or — shared storage — the image already there, which the source runs on until its stop
   * point and this side opens then (`later`). Shared storage needs a disk directory, the same
   * one as the source's (--disk-dir): ERR_UNSUPPORTED without one.
   */
  async incomingDiskOptions(
    name: string,
    spec: VmSpec,
    storage: StorageMode,
  ): Promise<{ diskPath?: string; diskImage?: 'create' | 'later' }> {
    if (spec.disk === null) return {};
    if (storage !== 'shared') {
      const options = await this.#diskOptions(name, spec);
      // Marked before the image exists: an agent killed mid-copy leaves a marked image, which
      // its next start removes (sweepHalfMigratedDisks); the mark goes at resume (settleIncomingDisk).
      if (options.diskPath) await fs.writeFile(options.diskPath + INCOMING_SUFFIX, `${process.pid}\n`, { mode: 0o600 });
      return options;
    }
    if (this.#diskDir === undefined) {
      throw new MigrationError(
        'ERR_UNSUPPORTED',
        "storage shared needs a disk directory on shared storage here (--disk-dir, the same as the source's)",
      );
    }
    const diskPath = join(this.#diskDir, `${name}.img`);
    const exists = await fs.stat(diskPath).then(
      (stat) => stat.isFile(),
      () => false,
    );
    if (!exists) {
      throw new MigrationError(
        'ERR_DISK_IMAGE',
        `storage shared: no image ${diskPath} here — is --disk-dir the same shared directory on both agents?`,
      );
    }
    return { diskPath, diskImage: 'later' };
  }

  /** An incoming VM runs here now: its image is no longer half-migrated (its mark goes). */
  async settleIncomingDisk(name: string): Promise<void> {
    const path = this.#vms.get(name)?.vm.disk?.path;
    if (path) await fs.rm(path + INCOMING_SUFFIX, { force: true });
  }

  /**
   * At the agent's start: remove the images an incoming migration was writing when this agent
   * (or one before it on this directory) was killed — marked NAME.img.incoming, and not locked
   * by a live process — with their maps, locks and marks. A VM never ran on them here, and the
   * source kept running on its own. Images without a mark are never touched (on shared storage
   * they may be another agent's). Returns the images removed.
   */
  async sweepHalfMigratedDisks(): Promise<string[]> {
    if (this.#diskDir === undefined) return [];
    const names = await fs.readdir(this.#diskDir).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const entry of names) {
      if (!entry.endsWith(`.img${INCOMING_SUFFIX}`)) continue;
      const image = join(this.#diskDir, entry.slice(0, -INCOMING_SUFFIX.length));
      try {
        const unlock = await lockImage(image);
        await unlock();
      } catch {
        continue; // a live process holds it: not half-migrated, or not ours to judge
      }
      for (const suffix of ['', ALLOC_MAP_SUFFIX, LOCK_SUFFIX, INCOMING_SUFFIX])
        await fs.rm(image + suffix, { force: true });
      removed.push(image);
      this.#logger.warn({ image }, 'removed a disk image an incoming migration left half-written');
    }
    return removed;
  }

  /**
   * Where a new VM's disk image goes: DISK_DIR/NAME.img. An image there now is a leftover of a
   * VM by that name that is no longer hosted (the name is reserved: no VM here has it) — an agent
   * that was killed — and a booting VM gets a blank disk, so it is removed. Unless its lock is
   * held: on a disk directory on shared storage the image may be another agent's running VM's
   * (ERR_DISK_IMAGE names the holder).
   */
  async #diskOptions(name: string, spec: VmSpec): Promise<{ diskPath?: string }> {
    if (spec.disk === null || this.#diskDir === undefined) return {};
    await fs.mkdir(this.#diskDir, { recursive: true });
    const diskPath = join(this.#diskDir, `${name}.img`);
    const stale = await fs.stat(diskPath).then(
      () => true,
      () => false,
    );
    if (stale) {
      const unlock = await lockImage(diskPath);
      await unlock();
      this.#logger.warn(
        { vm: name, image: diskPath },
        'removing the disk image a previous VM of this name left behind',
      );
      await fs.rm(diskPath, { force: true });
      await fs.rm(diskPath + ALLOC_MAP_SUFFIX, { force: true });
    }
    return { diskPath };
  }

  /** Take a VM under this host's name table (e.g. one built by an incoming migration); its reservation ends. */
  adopt(name: string, vm: ToyVm, state: VmState, net?: NicBackend): HostedVm {
    const hosted: HostedVm = net ? { name, vm, state, net } : { name, vm, state };
    this.#reserved.delete(name);
    this.#retired.delete(name);
    this.#vms.set(name, hosted);
    this.#onState(name, state);
    return hosted;
  }

  /** Where the guest-memory budget stands (each VM charged its memory plus VM_OVERHEAD_BYTES). */
  get guestMemory(): GuestMemoryLedger {
    let hostedBytes = 0;
    for (const { vm } of this.#vms.values()) hostedBytes += vmCharge(vm.spec.memoryBytes);
    let reservedBytes = 0;
    for (const { bytes } of this.#reserved.values()) reservedBytes += vmCharge(bytes);
    return { budgetBytes: this.#budgetBytes, hostedBytes, reservedBytes };
  }

  /**
   * Why a VM `name` of `bytes` could not be built here now — the name is taken (ERR_BUSY) or the
   * memory is not in the budget (ERR_NO_MEMORY) — or undefined. `what` names it in the message.
   */
  refuses(name: string, bytes: number, what = `VM "${name}"`): MigrationError | undefined {
    if (!this.isFree(name)) return new MigrationError('ERR_BUSY', `a VM named "${name}" already exists here`);
    return refuseGuestMemory(this.guestMemory, bytes, what);
  }

  /**
   * Claim the name and `bytes` of the budget for a VM about to be built (throws what refuses()
   * says). adopt() takes the claim over; release() it when the VM is not built after all.
   */
  reserve(name: string, bytes: number, what?: string): Reservation {
    const refused = this.refuses(name, bytes, what);
    if (refused) throw refused;
    const reservation: Reservation = {
      name,
      bytes,
      release: () => {
        if (this.#reserved.get(name) === reservation) this.#reserved.delete(name);
      },
    };
    this.#reserved.set(name, reservation);
    return reservation;
  }

  /** True when no VM has this name, hosted or about to be built (so an incoming migration may use it). */
  isFree(name: string): boolean {
    return !this.#vms.has(name) && !this.#reserved.has(name);
  }

  get(name: string): HostedVm {
    const hosted = this.#vms.get(name);
    if (!hosted && this.#retired.has(name)) {
      throw new MigrationError('ERR_VM_STATE', `"${name}" was migrated away: this agent no longer holds its memory`);
    }
    if (!hosted) {
      const known = [...this.#vms.keys()];
      throw new MigrationError(
        'ERR_NOT_FOUND',
        `no VM named "${name}" here${known.length ? ` (have: ${known.join(', ')})` : ' (none hosted)'}`,
      );
    }
    return hosted;
  }

  setState(name: string, state: VmState): void {
    const hosted = this.get(name);
    if (hosted.state === state) return;
    hosted.state = state;
    this.#onState(name, state);
  }

  info(name: string): VmInfo {
    const retired = this.#retired.get(name);
    if (retired) return retired;
    const { vm, state, net } = this.get(name);
    const info: VmInfo = { name, state, steps: vm.steps, memoryBytes: vm.spec.memoryBytes, workload: vm.spec.workload };
    if (vm.disk) {
      info.disk = { sizeBytes: vm.disk.sizeBytes, allocatedBytes: vm.disk.allocatedBytes, image: vm.disk.path };
    }
    if (net) {
      const { ip, port, mac } = net.address;
      info.nic = { address: `${ip}:${port}`, mac, mode: net.mode, taken: net.taken };
    }
    return info;
  }

  list(): VmInfo[] {
    return [...this.#vms.keys(), ...this.#retired.keys()].map((name) => this.info(name));
  }

  /**
   * A migration handed this VM over and completed: free its memory and vCPU, keep a record
   * (state "migrated", its last step count) so query-vms still tells where it went.
   */
  async retire(name: string): Promise<void> {
    const hosted = this.get(name);
    const record: VmInfo = { ...this.info(name), state: 'migrated' };
    this.#vms.delete(name);
    this.#retired.set(name, record);
    this.#onState(name, 'migrated');
    await hosted.net?.dispose();
    await hosted.vm.destroy();
  }

  /** Operator pause (QMP `stop`). */
  async stop(name: string): Promise<VmInfo> {
    const hosted = this.get(name);
    if (hosted.state === 'paused') return this.info(name);
    if (hosted.state !== 'running') {
      throw new MigrationError('ERR_VM_STATE', `cannot stop "${name}": it is ${hosted.state}`);
    }
    await hosted.vm.pause();
    this.setState(name, 'paused');
    return this.info(name);
  }

  /**
   * Operator resume (QMP `cont`). Refused mid-migration, and after the VM was handed off unless
   * `force` is given: a handoff whose confirmation was lost leaves the VM paused here in state
   * "migrated", and only the operator can know whether the destination runs it.
   */
  cont(name: string, options: { force?: boolean } = {}): VmInfo {
    const hosted = this.get(name);
    if (hosted.state === 'running') return this.info(name);
    const forced = options.force === true && hosted.state === 'migrated';
    if (hosted.state !== 'paused' && !forced) {
      throw new MigrationError(
        'ERR_VM_STATE',
        `cannot resume "${name}": it is ${hosted.state}${
          hosted.state === 'migrated'
            ? ' (it was handed to the destination; resuming here could make two copies — use force only if the destination does not run it)'
            : ''
        }`,
      );
    }
    hosted.vm.resume();
    this.setState(name, 'running');
    // Forced back after a handoff whose outcome is unknown: the address was given away; take it back.
    if (hosted.net && !hosted.net.taken) {
      hosted.net.take().catch((error: unknown) => {
        this.#logger.error({ err: error, vm: name }, "could not take the VM's address back");
      });
    }
    return this.info(name);
  }

  /** Stop and free a VM. */
  async remove(name: string): Promise<void> {
    if (this.#retired.delete(name)) return;
    const hosted = this.get(name);
    this.#vms.delete(name);
    await hosted.net?.dispose();
    await hosted.vm.destroy();
  }

  /** Free every VM (daemon shutdown). */
  async removeAll(): Promise<void> {
    for (const name of [...this.#vms.keys()]) await this.remove(name);
  }
}
