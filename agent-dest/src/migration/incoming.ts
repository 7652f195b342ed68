/**
 * One incoming pre-copy migration, as an explicit state machine (status.ts). The handshake
 * (Hello/Welcome) is done by the time this runs; then:
 *
 *   setup      Setup → check the VM spec, build a zero VM (vCPU not running), learn which
 *              pages are known zero from the Setup bitmap → SetupDone
 *   receiving  Pages (bytes already copied into guest memory by the channel's page sink),
 *              RoundEnd, CpuState, DeviceState, then StopCopyEnd with the source's digest:
 *              compare with ours → Ready (match) or Error ERR_DIGEST_MISMATCH
 *   ready      wait for Handoff; losing the source here discards our copy (it still owns it)
 *   running    resume the vCPU, answer Resumed with how long we held it → completed
 */
import type { Logger } from 'pino';
import { MigrationError, StateMachine, toMigrationError } from '@livemig/shared';
import { messageName, msg, MsgType, type PeerChannel, type PageApplier } from '@livemig/shared/channel';
import type { ControlEvents, EventName } from '@livemig/shared/control';
import type { VmHost } from '@livemig/shared/host';
import { Bitmap, parseVmSpec, startPrefault, ToyVm, PAGE_SIZE, type Prefault } from '@livemig/shared/vm';
import { DEST_DISCARDS_ON_FAILURE, DEST_TRANSITIONS, type DestStatus } from './status.ts';

export interface IncomingComponents {
  host: VmHost;
  channel: PeerChannel;
  /** Where the channel's page sink writes; attached to the VM's memory at Setup. */
  applier: PageApplier;
  logger: Logger;
  emit: <E extends EventName>(event: E, data: ControlEvents[E]) => void;
}

export interface IncomingOptions {
  /** Largest VM accepted. @default 16 GiB */
  maxMemoryBytes: number;
}

export class IncomingMigration {
  readonly #c: IncomingComponents;
  readonly #options: IncomingOptions;
  readonly #machine = new StateMachine<DestStatus>(DEST_TRANSITIONS, 'none');
  #migrationId = '';
  #vmName: string | undefined;
  #vm: ToyVm | undefined;
  #prefault: Prefault | undefined;

  constructor(components: IncomingComponents, options: IncomingOptions) {
    this.#c = components;
    this.#options = options;
    this.#machine.onTransition((from, to) => {
      this.#c.logger.info({ event: 'status.change', from, to }, `incoming migration ${from} → ${to}`);
      if (this.#migrationId) {
        this.#c.emit('MIGRATION', { migrationId: this.#migrationId, status: to, vm: this.#vmName ?? '' });
      }
    });
  }

  get status(): DestStatus {
    return this.#machine.state;
  }

  get migrationId(): string {
    return this.#migrationId;
  }

  /** Run to the end. Never throws: failures are logged, told to the source, and the copy discarded. */
  async run(): Promise<void> {
    try {
      await this.#setup();
      await this.#receive();
      await this.#awaitHandoff();
      this.#machine.transition('running', 'completed');
      await this.#c.channel.close();
    } catch (caught) {
      await this.#fail(toMigrationError(caught));
    } finally {
      await this.#prefault?.stop();
    }
  }

  /** Give up (daemon shutdown): only before the VM runs here. Returns false once it runs. */
  abort(error: MigrationError): boolean {
    if (!DEST_DISCARDS_ON_FAILURE.has(this.status) && this.status !== 'none') return false;
    this.#c.channel.abort(error);
    return true;
  }

  async #setup(): Promise<void> {
    const { channel, host, logger, applier } = this.#c;
    this.#machine.transition('none', 'setup');
    const setup = await channel.expect(MsgType.Setup);
    const started = performance.now();
    this.#migrationId = setup.migrationId;
    if (setup.mode !== 'precopy') {
      throw new MigrationError('ERR_HANDSHAKE', `mode "${setup.mode}" is not supported by this agent yet`);
    }
    if (setup.vm.pageSize !== PAGE_SIZE) {
      throw new MigrationError('ERR_HANDSHAKE', `page size ${setup.vm.pageSize} ≠ this agent's ${PAGE_SIZE}`);
    }
    if (setup.vm.memoryBytes > this.#options.maxMemoryBytes) {
      throw new MigrationError(
        'ERR_HANDSHAKE',
        `VM of ${setup.vm.memoryBytes} bytes exceeds this agent's limit of ${this.#options.maxMemoryBytes}`,
      );
    }
    const spec = parseVmSpec({
      memory: setup.vm.memoryBytes,
      init: setup.vm.init,
      workload: setup.vm.workload,
      seed: setup.vm.seed,
    });
    const name = setup.vm.name;
    if (!host.isFree(name))
      throw new MigrationError('ERR_BUSY', `a VM named "${name}" already exists on the destination`);
    const vm = await ToyVm.createIncoming(spec, { postcopy: false });
    this.#vm = vm;
    this.#vmName = name;
    host.adopt(name, vm, 'incoming');
    applier.attach(vm.memory);
    // Touch the pages that will arrive, in a worker, ahead of the receiver (prefault.ts).
    if (setup.bitmap) {
      this.#prefault = startPrefault(vm.memory, Bitmap.fromBytes(setup.bitmap, vm.memory.pageCount).toPageList());
    }
    channel.send(msg.setupDone(performance.now() - started));
    this.#machine.transition('setup', 'receiving');
    logger.info({ event: 'setup.done', migrationId: this.#migrationId, vm: name }, 'receiving VM');
  }

  async #receive(): Promise<void> {
    const { channel, applier, logger } = this.#c;
    const vm = this.#vm!;
    for (;;) {
      const message = await channel.next();
      switch (message.type) {
        case MsgType.Pages:
        case MsgType.RoundEnd:
          break; // page bytes went straight to memory through the applier
        case MsgType.CpuState:
          vm.importCpuState(message.registers);
          break;
        case MsgType.DeviceState:
          vm.importDeviceState(message.state);
          break;
        case MsgType.StopCopyEnd: {
          const digest = applier.digest();
          if (digest !== message.digest) {
            throw new MigrationError(
              'ERR_DIGEST_MISMATCH',
              `received memory digest ${digest} ≠ source ${message.digest}: refusing to run a damaged VM`,
            );
          }
          channel.send(msg.ready(digest));
          this.#machine.transition('receiving', 'ready');
          logger.info({ event: 'stopcopy.verified', digest }, 'memory verified; waiting for handoff');
          return;
        }
        case MsgType.Cancel:
          throw new MigrationError('ERR_CANCELLED', `source cancelled: ${message.reason}`);
        default:
          throw new MigrationError(
            'ERR_UNEXPECTED_MESSAGE',
            `${messageName(message.type)} is not expected while receiving`,
          );
      }
    }
  }

  async #awaitHandoff(): Promise<void> {
    const { channel, host } = this.#c;
    const message = await channel.next();
    if (message.type === MsgType.Cancel)
      throw new MigrationError('ERR_CANCELLED', `source cancelled: ${message.reason}`);
    if (message.type !== MsgType.Handoff) {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `expected Handoff, got ${messageName(message.type)}`);
    }
    const received = performance.now();
    this.#machine.transition('ready', 'running');
    this.#vm!.resume();
    host.setState(this.#vmName!, 'running');
    channel.send(msg.resumed(performance.now() - received));
    this.#c.logger.info({ event: 'vm.resumed', vm: this.#vmName }, 'the VM runs here now');
  }

  async #fail(error: MigrationError): Promise<void> {
    const { host, logger, channel } = this.#c;
    const discard = DEST_DISCARDS_ON_FAILURE.has(this.status);
    channel.abort(error);
    if (discard && this.#vmName && this.#vm) {
      await host.remove(this.#vmName).catch(() => {});
    }
    logger.warn(
      { event: 'migration.failed', err: error, status: this.status },
      discard ? 'incoming migration failed; the half-built VM was discarded' : 'incoming migration failed',
    );
    if (!this.#machine.isFinal) this.#machine.transition(this.status, 'failed');
  }
}
