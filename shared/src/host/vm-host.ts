/**
 * The VMs an agent hosts, by name. Both daemons use it: the source hosts VMs it may migrate
 * out, the destination hosts the VMs it received (and could later migrate them on). It owns
 * the operator-visible VM state — running | paused | migrating-out | incoming | migrated — and
 * refuses operator actions that would break a migration's ownership rules (e.g. `cont` on a
 * VM that is mid-migration).
 */
import { MigrationError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
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
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class VmHost {
  readonly #vms = new Map<string, HostedVm>();
  /** VMs migrated away: their memory is freed, their last figures kept for query-vms. */
  readonly #retired = new Map<string, VmInfo>();
  readonly #onState: (name: string, state: VmState) => void;
  readonly #addressMover: (address: VmAddress) => AddressMover;
  readonly #logger: Logger;

  constructor(options: VmHostOptions = {}) {
    this.#onState = options.onState ?? (() => {});
    this.#addressMover = options.addressMover ?? ((address) => new LoopbackAddress(address));
    this.#logger = options.logger ?? silentLogger();
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

  /** Boot a VM from its spec and start it running. */
  async create(name: string, spec: VmSpec): Promise<HostedVm> {
    this.#reserve(name);
    const vm = await ToyVm.boot(spec);
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
  }

  /** Take a VM under this host's name table (e.g. one built by an incoming migration). */
  adopt(name: string, vm: ToyVm, state: VmState, net?: NicBackend): HostedVm {
    const hosted: HostedVm = net ? { name, vm, state, net } : { name, vm, state };
    this.#retired.delete(name);
    this.#vms.set(name, hosted);
    this.#onState(name, state);
    return hosted;
  }

  /** Throw ERR_BUSY if the name is taken. */
  #reserve(name: string): void {
    VmHost.checkName(name);
    if (this.#vms.has(name)) throw new MigrationError('ERR_BUSY', `a VM named "${name}" already exists here`);
  }

  /** True when no VM has this name (so an incoming migration may use it). */
  isFree(name: string): boolean {
    return !this.#vms.has(name);
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
