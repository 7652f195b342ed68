/**
 * One incoming migration, as an explicit state machine (status.ts). The handshake is done and
 * the daemon has read the Setup that started it; then:
 *
 *   setup      check the VM spec, build a zero VM (vCPU not running; post-copy: every page
 *              absent) → SetupDone
 *   receiving  Pages (bytes already copied into guest memory by the channel's page sink),
 *              RoundEnd, CpuState, DeviceState, then either
 *                StopCopyEnd (pre-copy): compare the source's digest with ours → Ready, or
 *                PostcopyStart (post-copy, hybrid): mark every page not in its bitmap present → Ready
 *   ready      wait for Handoff; losing the source here discards our copy (it still owns it)
 *   running    (pre-copy) resume the vCPU, answer Resumed → completed
 *   postcopy   resume at once; faults become PageRequests on the fault channel (page-faults.ts);
 *              pages arrive on both connections; completed once every page is present and the
 *              digest of what arrived equals the source's (sent in StopCopyEnd after its push)
 *   postcopy-paused  the link broke: the VM runs on, blocking on absent pages, until the source
 *              reconnects (Attach resume → we answer Missing) and the push goes on.
 */
import type { Logger } from 'pino';
import { MigrationError, StateMachine, toMigrationError } from '@livemig/shared';
import { messageName, msg, MsgType, type PageApplier, type PeerChannel } from '@livemig/shared/channel';
import type { ControlEvents, EventName } from '@livemig/shared/control';
import type { VmHost } from '@livemig/shared/host';
import type { Message, SetupMsg } from '@livemig/shared/protocol';
import type { NicBackend } from '@livemig/shared/host';
import { Bitmap, parseVmSpec, startPrefault, ToyVm, PAGE_SIZE, type Prefault } from '@livemig/shared/vm';
import { FaultHandler } from './page-faults.ts';
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
  #channel: PeerChannel;
  #migrationId = '';
  #vmName: string | undefined;
  #vm: ToyVm | undefined;
  #prefault: Prefault | undefined;
  #faults: FaultHandler | undefined;
  /** The source's digest of the VM at the stop point (post-copy: sent after its push). */
  #sourceDigest: string | undefined;
  /** Wakes the post-copy loop: a page arrived, or a channel was (re)attached. */
  #wake: (() => void) | undefined;
  #resumed: { channel: PeerChannel } | undefined;

  constructor(components: IncomingComponents, options: IncomingOptions) {
    this.#c = components;
    this.#options = options;
    this.#channel = components.channel;
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

  /** Run to the end, starting from the Setup the daemon read. Never throws. */
  async run(setup: SetupMsg): Promise<void> {
    try {
      await this.#setup(setup);
      const mode = await this.#receive();
      await this.#awaitHandoff(mode);
      if (mode === 'postcopy') await this.#postcopy();
      this.#machine.transition(['running', 'postcopy'], 'completed');
      await this.#channel.close();
    } catch (caught) {
      await this.#fail(toMigrationError(caught));
    } finally {
      this.#faults?.stop();
      await this.#prefault?.stop();
    }
  }

  /** Give up (daemon shutdown): only before the VM runs here. Returns false once it runs. */
  abort(error: MigrationError): boolean {
    if (!DEST_DISCARDS_ON_FAILURE.has(this.status) && this.status !== 'none') return false;
    this.#channel.abort(error);
    return true;
  }

  /** A second connection joined this migration: the post-copy fault channel. */
  attachFaultChannel(channel: PeerChannel, applier: PageApplier): void {
    this.#attachApplier(applier);
    if (!this.#faults) this.#pendingFaultChannel = channel;
    else this.#faults.attachChannel(channel);
  }

  #pendingFaultChannel: PeerChannel | undefined;

  /**
   * The source reconnected after the link broke during post-copy: answer which pages are still
   * absent, and carry on over the new connection.
   */
  resume(channel: PeerChannel, applier: PageApplier): void {
    if (this.status !== 'postcopy-paused' && this.status !== 'postcopy') {
      channel.abort(new MigrationError('ERR_VM_STATE', `cannot resume: migration is ${this.status}`));
      return;
    }
    this.#attachApplier(applier);
    channel.send(msg.missing(this.#absentPages().bytes()));
    this.#resumed = { channel };
    // If we had not noticed the old connection die yet, drop it now: the source has moved on.
    if (this.status === 'postcopy') {
      this.#channel.abort(new MigrationError('ERR_CONNECTION', 'replaced by the resumed connection'));
    }
    this.#wake?.();
  }

  async #setup(setup: SetupMsg): Promise<void> {
    const { host, logger, applier } = this.#c;
    this.#machine.transition('none', 'setup');
    const started = performance.now();
    this.#migrationId = setup.migrationId;
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
      nic: setup.vm.nic,
    });
    const name = setup.vm.name;
    if (!host.isFree(name))
      throw new MigrationError('ERR_BUSY', `a VM named "${name}" already exists on the destination`);
    const vm = await ToyVm.createIncoming(spec, { postcopy: setup.mode !== 'precopy' });
    // A VM with a NIC: get its address ready now (everything short of taking it), so a host that
    // cannot give the VM its address fails here, while the source still runs the VM.
    let net: NicBackend | null;
    try {
      net = await host.prepareNic(vm, logger.child({ vm: name }));
    } catch (error) {
      await vm.destroy();
      throw error;
    }
    this.#vm = vm;
    this.#vmName = name;
    host.adopt(name, vm, 'incoming', net ?? undefined);
    applier.attach(vm.memory);
    // Touch the pages that will arrive, in a worker, ahead of the receiver (prefault.ts).
    if (setup.bitmap) {
      this.#prefault = startPrefault(vm.memory, Bitmap.fromBytes(setup.bitmap, vm.memory.pageCount).toPageList());
    }
    this.#channel.send(msg.setupDone(performance.now() - started));
    this.#machine.transition('setup', 'receiving');
    logger.info({ event: 'setup.done', migrationId: this.#migrationId, vm: name, mode: setup.mode }, 'receiving VM');
  }

  /** Receive until the stop point; returns which way the VM continues. */
  async #receive(): Promise<'precopy' | 'postcopy'> {
    const { applier, logger } = this.#c;
    const vm = this.#vm!;
    for (;;) {
      const message = await this.#channel.next();
      switch (message.type) {
        case MsgType.Pages:
          break; // page bytes went straight to memory through the applier
        case MsgType.RoundEnd:
          // Every page of the round is in memory (frames are applied in order): say so.
          this.#channel.send(msg.roundAck(message.round));
          break;
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
          this.#channel.send(msg.ready(digest));
          this.#machine.transition('receiving', 'ready');
          logger.info({ event: 'stopcopy.verified', digest }, 'memory verified; waiting for handoff');
          return 'precopy';
        }
        case MsgType.PostcopyStart: {
          const absent = Bitmap.fromBytes(message.bitmap, vm.memory.pageCount);
          vm.markPresent(presentPages(absent));
          this.#startFaultService();
          this.#channel.send(msg.ready(''));
          this.#machine.transition('receiving', 'ready');
          logger.info({ event: 'postcopy.ready', absent: absent.count }, 'ready to run with pages absent');
          return 'postcopy';
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

  /** From here on every arriving page is installed: marked present (waking the vCPU) and its fault resolved. */
  #startFaultService(): void {
    const vm = this.#vm!;
    this.#faults = new FaultHandler(vm, this.#c.logger);
    this.#faults.start();
    if (this.#pendingFaultChannel) this.#faults.attachChannel(this.#pendingFaultChannel);
    this.#installOnArrival(this.#c.applier);
    for (const applier of this.#extraAppliers) this.#installOnArrival(applier);
  }

  readonly #extraAppliers: PageApplier[] = [];

  #attachApplier(applier: PageApplier): void {
    applier.attach(this.#vm!.memory, this.#c.applier.ledger);
    this.#extraAppliers.push(applier);
    if (this.#faults) this.#installOnArrival(applier);
  }

  #installOnArrival(applier: PageApplier): void {
    const vm = this.#vm!;
    const faults = this.#faults!;
    applier.wanted = (page) => !vm.isPresent(page);
    applier.onPage = (page) => {
      vm.markPresent([page]);
      faults.pageArrived(page);
      if (vm.missingPages === 0) this.#wake?.();
    };
  }

  async #awaitHandoff(mode: 'precopy' | 'postcopy'): Promise<void> {
    const { host } = this.#c;
    const message = await this.#channel.next();
    if (message.type === MsgType.Cancel)
      throw new MigrationError('ERR_CANCELLED', `source cancelled: ${message.reason}`);
    if (message.type !== MsgType.Handoff) {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `expected Handoff, got ${messageName(message.type)}`);
    }
    const received = performance.now();
    this.#machine.transition('ready', mode === 'precopy' ? 'running' : 'postcopy');
    // The address follows the VM: the source let go of it before sending Handoff. Taking it
    // (a bind, or bringing a link up) goes on while the vCPU resumes.
    const net = host.get(this.#vmName!).net;
    net?.take().catch((error: unknown) => {
      this.#c.logger.error({ err: error, event: 'nic.take-failed' }, 'the VM runs here but could not take its address');
    });
    this.#resumedAt = { steps: this.#vm!.steps, at: performance.now() };
    this.#vm!.resume();
    host.setState(this.#vmName!, 'running');
    this.#channel.send(msg.resumed(performance.now() - received));
    this.#c.logger.info({ event: 'vm.resumed', vm: this.#vmName, mode }, 'the VM runs here now');
  }

  /**
   * Post-copy until every page is present and the source's digest (StopCopyEnd, after its push)
   * matches what arrived. A broken link parks the migration in postcopy-paused until resume().
   */
  async #postcopy(): Promise<void> {
    const vm = this.#vm!;
    const { logger, applier } = this.#c;
    for (;;) {
      try {
        while (this.#sourceDigest === undefined || vm.missingPages > 0) {
          const message = await this.#nextOrWake();
          if (message?.type === MsgType.StopCopyEnd) this.#sourceDigest = message.digest;
          else if (message && message.type !== MsgType.Pages) {
            throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `${messageName(message.type)} during post-copy`);
          }
        }
        break;
      } catch (error) {
        if (this.#channel.failure === undefined) throw error;
        await this.#pauseUntilResumed(toMigrationError(error));
      }
    }
    vm.markAllPresent();
    const digest = applier.digest();
    if (digest !== this.#sourceDigest) {
      // The VM already runs here: nothing to roll back to. Say so loudly.
      throw new MigrationError(
        'ERR_DIGEST_MISMATCH',
        `post-copy memory digest ${digest} ≠ source ${this.#sourceDigest}: the running VM's memory is damaged`,
      );
    }
    const faults = this.#faults!.stats();
    const vmStats = vm.stats();
    const ranMs = performance.now() - this.#resumedAt.at;
    const stats = {
      faults: faults.faults,
      faultLatencyMs: faults.latencyMs,
      vcpuBlockedMs: vmStats.faultBlockedMs,
      stepsPerSecDuring: ranMs > 0 ? ((vm.steps - this.#resumedAt.steps) / ranMs) * 1000 : 0,
    };
    this.#channel.send(msg.complete(stats));
    logger.info(
      { event: 'postcopy.complete', ...stats, faultNoticeDelayMs: faults.noticeDelayMs },
      'every page is here; migration complete',
    );
  }

  /**
   * The next main-channel message, or undefined when woken by a page arrival. One `next()` stays
   * pending across wake-ups, so no message is ever taken and dropped.
   */
  async #nextOrWake(): Promise<Message | undefined> {
    this.#pendingNext ??= this.#channel.next();
    const woken = new Promise<undefined>((resolve) => (this.#wake = () => resolve(undefined)));
    try {
      const result = await Promise.race([this.#pendingNext, woken]);
      if (result !== undefined) this.#pendingNext = undefined;
      return result;
    } catch (error) {
      this.#pendingNext = undefined;
      throw error;
    } finally {
      this.#wake = undefined;
    }
  }

  #pendingNext: Promise<Message> | undefined;
  #resumedAt = { steps: 0, at: 0 };

  async #pauseUntilResumed(error: MigrationError): Promise<void> {
    this.#machine.transition('postcopy', 'postcopy-paused');
    this.#faults?.detachChannel();
    this.#c.logger.warn(
      { event: 'postcopy.paused', err: error, missing: this.#vm!.missingPages },
      'link lost during post-copy: the VM runs here but blocks on absent pages until the source reconnects',
    );
    this.#c.host.setState(this.#vmName!, 'running');
    while (!this.#resumed) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#channel = this.#resumed.channel;
    this.#resumed = undefined;
    this.#machine.transition('postcopy-paused', 'postcopy');
    this.#c.logger.info({ event: 'postcopy.resumed' }, 'source reconnected; post-copy continues');
  }

  /** Every page not present (set = absent), for Missing. */
  #absentPages(): Bitmap {
    const vm = this.#vm!;
    const absent = new Bitmap(vm.memory.pageCount);
    for (let n = 0; n < vm.memory.pageCount; n++) if (!vm.isPresent(n)) absent.set(n);
    return absent;
  }

  async #fail(error: MigrationError): Promise<void> {
    const { host, logger } = this.#c;
    const discard = DEST_DISCARDS_ON_FAILURE.has(this.status);
    this.#channel.abort(error);
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

/** The pages NOT in `absent`, ascending — word by word, since all-absent words are the common case. */
function presentPages(absent: Bitmap): Uint32Array {
  const present = new Uint32Array(absent.size - absent.count);
  let k = 0;
  const words = absent.words;
  for (let w = 0; w < words.length; w++) {
    let free = ~words[w]! >>> 0;
    while (free !== 0) {
      const bit = 31 - Math.clz32(free & -free);
      const page = w * 32 + bit;
      if (page < absent.size) present[k++] = page;
      free = (free & (free - 1)) >>> 0;
    }
  }
  return present;
}
